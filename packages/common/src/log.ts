/** Structured JSON logs (pino) with the service name and secrets redacted. */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Keys under which a database URL (with its password) may be logged by mistake. */
const DATABASE_URL_KEYS = ['NIGHTSHIFT_DATABASE_URL', 'databaseUrl', 'connectionString'];

/** `destination` is for tests that read what a service logs (default: stdout). */
export function createLogger(service: string, level = process.env.NIGHTSHIFT_LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options = {
    name: service,
    level,
    // A database URL carries its password: log it through redactDatabaseUrl (database-url.ts); these keys are censored whole.
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'secretKey', '*.secretKey', ...DATABASE_URL_KEYS.flatMap((k) => [k, `*.${k}`])],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
