export * from './spec.js';
export * from './expand.js';
export * from './canonical.js';
