/**
 * Entry point: `s3-server-main.ts PORT DIR [ADDRESS [ACCESS_LOG]]` runs s3rver on
 * ADDRESS:PORT (default 127.0.0.1). With ACCESS_LOG, every GET of an object
 * is appended there as a JSON line {method, path, status} (tests count
 * downloads with it, e.g. of registry model files).
 */
import { appendFileSync } from 'node:fs';
import S3rver from 's3rver';

const [port, directory, address = '127.0.0.1', accessLog] = process.argv.slice(2);
if (!port || !directory) {
  console.error('usage: s3-server-main.ts PORT DIR [ADDRESS [ACCESS_LOG]]');
  process.exit(2);
}
const server = new S3rver({ address, port: Number(port), directory, silent: true, vhostBuckets: false });
if (accessLog) {
  // First in the chain (s3rver's routes end it), written once the response is known.
  server.middleware.unshift(async (ctx, next) => {
    await next();
    if (ctx.method === 'GET') appendFileSync(accessLog, `${JSON.stringify({ method: ctx.method, path: ctx.path, status: ctx.status })}\n`);
  });
}
await server.run();
console.log(`s3rver listening on ${address}:${port}`);
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
