export * from './ports.js';
export * from './process.js';
export * from './nats-server.js';
export * from './s3-server.js';
export * from './farm.js';
export * from './tmp.js';
export * from './certs.js';
export * from './netns.js';
