export * from './spec.js';
export * from './expand.js';
export * from './canonical.js';
export * from './vram.js';
export * from './spec-text.js';
export * from './limits.js';
export { tidyPrompt, tidyPromptByRegex } from './tidy.js';
