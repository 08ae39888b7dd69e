export * from './config.js';
export * from './log.js';
export * from './storage.js';
export * from './events.js';
export * from './palette.js';
export * from './png-text.js';
export * from './a1111.js';
export * from './files-route.js';
