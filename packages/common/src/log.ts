/** Structured JSON logs (pino) with the service name and secrets redacted. */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** `destination` is for tests that read what a service logs (default: stdout). */
export function createLogger(service: string, level = process.env.NIGHTSHIFT_LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options = {
    name: service,
    level,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'secretKey', '*.secretKey'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
