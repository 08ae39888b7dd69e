export { startNode, defaultBackends, type RunningNode } from './node.js';
export type { Backend, RenderRequest, RenderProgress, RenderResult, RenderParams } from './backends/backend.js';
export { Worker, type Report } from './worker.js';
