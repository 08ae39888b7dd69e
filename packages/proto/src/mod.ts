export * from './gen/nightshift/v1/sweep_pb.js';
export * from './gen/nightshift/v1/node_pb.js';
export * from './grpc.js';
