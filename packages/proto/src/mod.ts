export * from './gen/nightshift/v1/sweep_pb.js';
export * from './gen/nightshift/v1/node_pb.js';
export * from './grpc.js';
// The ONNX subset the model builders (@nightshift/models) write, as a namespace: its names (TensorProto, …) stay apart from the service's.
export * as onnx from './gen/onnx/onnx_subset_pb.js';
