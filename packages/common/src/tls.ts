/**
 * gRPC transport security from configuration (README "Node enrolment and TLS").
 * The coordinator serves TLS when it has a certificate and key; clients use
 * TLS when they are given the CA to trust. With NIGHTSHIFT_TLS_CLIENT_CA the
 * coordinator also demands client certificates (mTLS). Files are read once,
 * at start: rotating a certificate means restarting the process.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Config } from './config.js';

type TlsConfig = Pick<
  Config,
  'NIGHTSHIFT_TLS_CERT' | 'NIGHTSHIFT_TLS_KEY' | 'NIGHTSHIFT_TLS_CA' | 'NIGHTSHIFT_TLS_SERVER_NAME' | 'NIGHTSHIFT_TLS_CLIENT_CA' | 'NIGHTSHIFT_TLS_CLIENT_CERT' | 'NIGHTSHIFT_TLS_CLIENT_KEY'
>;

function pem(name: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${name}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

export type TlsMode = 'insecure' | 'tls' | 'mtls';

export function serverTlsMode(config: TlsConfig): TlsMode {
  if (!config.NIGHTSHIFT_TLS_CERT && !config.NIGHTSHIFT_TLS_KEY) return 'insecure';
  return config.NIGHTSHIFT_TLS_CLIENT_CA ? 'mtls' : 'tls';
}

export function grpcServerCredentials(config: TlsConfig): grpc.ServerCredentials {
  const { NIGHTSHIFT_TLS_CERT: cert, NIGHTSHIFT_TLS_KEY: key, NIGHTSHIFT_TLS_CLIENT_CA: clientCa } = config;
  if (!cert && !key) {
    if (clientCa) throw new Error('NIGHTSHIFT_TLS_CLIENT_CA needs NIGHTSHIFT_TLS_CERT and NIGHTSHIFT_TLS_KEY (mTLS is TLS first)');
    return grpc.ServerCredentials.createInsecure();
  }
  if (!cert || !key) throw new Error('NIGHTSHIFT_TLS_CERT and NIGHTSHIFT_TLS_KEY must be set together');
  return grpc.ServerCredentials.createSsl(
    clientCa ? pem('NIGHTSHIFT_TLS_CLIENT_CA', clientCa) : null,
    [{ cert_chain: pem('NIGHTSHIFT_TLS_CERT', cert), private_key: pem('NIGHTSHIFT_TLS_KEY', key) }],
    Boolean(clientCa),
  );
}

/** Credentials and channel options for a client of the coordinator's gRPC port (gpu-node, SweepService programs). */
export function grpcClientCredentials(config: TlsConfig): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  const { NIGHTSHIFT_TLS_CA: ca, NIGHTSHIFT_TLS_CLIENT_CERT: cert, NIGHTSHIFT_TLS_CLIENT_KEY: key, NIGHTSHIFT_TLS_SERVER_NAME: serverName } = config;
  if (!ca) {
    if (cert || key) throw new Error('NIGHTSHIFT_TLS_CLIENT_CERT/KEY need NIGHTSHIFT_TLS_CA (the CA that signed the coordinator certificate)');
    return { credentials: grpc.credentials.createInsecure(), options: {} };
  }
  if (Boolean(cert) !== Boolean(key)) throw new Error('NIGHTSHIFT_TLS_CLIENT_CERT and NIGHTSHIFT_TLS_CLIENT_KEY must be set together');
  const credentials = grpc.credentials.createSsl(
    pem('NIGHTSHIFT_TLS_CA', ca),
    key ? pem('NIGHTSHIFT_TLS_CLIENT_KEY', key) : null,
    cert ? pem('NIGHTSHIFT_TLS_CLIENT_CERT', cert) : null,
  );
  // An address by IP (or through a load balancer) while the certificate names the service.
  const options: grpc.ChannelOptions = serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {};
  return { credentials, options };
}
