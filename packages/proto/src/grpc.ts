/**
 * A small typed bridge from protobuf-es service descriptors to @grpc/grpc-js.
 * grpc-js wants a ServiceDefinition of paths and (de)serialisers; protobuf-es
 * gives us descriptors and toBinary/fromBinary. This keeps the generated code
 * untouched and gives both servers and clients precise message types.
 */
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

type In<M extends GenServiceMethods[string]> = MessageShape<M['input']>;
type Out<M extends GenServiceMethods[string]> = MessageShape<M['output']>;
type OutInit<M extends GenServiceMethods[string]> = MessageInitShape<M['output']>;

/** Server-side handler shape per method kind. */
export type ServiceHandlers<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]['methodKind'] extends 'unary'
    ? (req: In<S[K]>, call: grpc.ServerUnaryCall<In<S[K]>, Out<S[K]>>) => Promise<OutInit<S[K]>>
    : S[K]['methodKind'] extends 'server_streaming'
      ? (call: grpc.ServerWritableStream<In<S[K]>, Out<S[K]>>) => void
      : S[K]['methodKind'] extends 'bidi_streaming'
        ? (call: grpc.ServerDuplexStream<In<S[K]>, Out<S[K]>>) => void
        : (call: grpc.ServerReadableStream<In<S[K]>, Out<S[K]>>, cb: grpc.sendUnaryData<Out<S[K]>>) => void;
};

/** Client-side method shape per method kind. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]['methodKind'] extends 'unary'
    ? (req: MessageInitShape<S[K]['input']>, meta?: grpc.Metadata, opts?: grpc.CallOptions) => Promise<Out<S[K]>>
    : S[K]['methodKind'] extends 'server_streaming'
      ? (req: MessageInitShape<S[K]['input']>, meta?: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientReadableStream<Out<S[K]>>
      : (meta?: grpc.Metadata, opts?: grpc.CallOptions) => grpc.ClientDuplexStream<In<S[K]>, Out<S[K]>>;
} & { close(): void; raw: grpc.Client };

function serializer(schema: DescMessage) {
  return (value: unknown) => Buffer.from(toBinary(schema, value as never));
}
function deserializer(schema: DescMessage) {
  return (bytes: Buffer) => fromBinary(schema, bytes);
}

/** The grpc-js ServiceDefinition for a protobuf-es service. */
export function serviceDefinition(service: GenService<GenServiceMethods>): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    };
  }
  return def;
}

/** grpc status error with a readable message, for handlers to throw. */
export class GrpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

/** Registers typed handlers; unary handlers are async and may throw GrpcError. */
export function addService<S extends GenServiceMethods>(server: grpc.Server, service: GenService<S>, handlers: ServiceHandlers<S>): void {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (handlers as Record<string, (...args: never[]) => unknown>)[method.localName];
    if (!handler) throw new Error(`no handler for ${service.typeName}.${method.name}`);
    if (method.methodKind === 'unary') {
      impl[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        (handler as (req: unknown, call: unknown) => Promise<unknown>)(call.request, call).then(
          (res) => cb(null, create(method.output, res as never)),
          (err: unknown) => cb(toServiceError(err)),
        );
      };
    } else {
      impl[method.localName] = handler as grpc.UntypedHandleCall;
    }
  }
  server.addService(serviceDefinition(service as unknown as GenService<GenServiceMethods>), impl);
}

export function toServiceError(err: unknown): grpc.ServiceError {
  const code = err instanceof GrpcError ? err.code : grpc.status.INTERNAL;
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() }) as grpc.ServiceError;
}

/** A typed client: unary calls return promises, streams return grpc-js streams. */
export function createClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
): ServiceClient<S> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service as unknown as GenService<GenServiceMethods>), service.name);
  const raw = new Ctor(address, credentials, options) as grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  const client: Record<string, unknown> = { close: () => raw.close(), raw };
  for (const method of service.methods) {
    const fn = raw[method.localName]!.bind(raw);
    if (method.methodKind === 'unary') {
      client[method.localName] = (req: unknown, meta = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
        new Promise((resolve, reject) => {
          fn(create(method.input, req as never), meta, opts, (err: grpc.ServiceError | null, res: unknown) =>
            err ? reject(err) : resolve(res),
          );
        });
    } else if (method.methodKind === 'server_streaming') {
      client[method.localName] = (req: unknown, meta = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
        fn(create(method.input, req as never), meta, opts);
    } else {
      client[method.localName] = (meta = new grpc.Metadata(), opts: grpc.CallOptions = {}) => fn(meta, opts);
    }
  }
  return client as ServiceClient<S>;
}

/** Handler map for a generated service constant, e.g. HandlersOf<typeof SweepService>. */
export type HandlersOf<T> = T extends GenService<infer S> ? ServiceHandlers<S> : never;
/** Client type for a generated service constant. */
export type ClientOf<T> = T extends GenService<infer S> ? ServiceClient<S> : never;
