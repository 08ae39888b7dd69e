/**
 * Entry point: `s3-server-main.ts PORT DIR [ADDRESS [ACCESS_LOG]]` runs s3rver on
 * ADDRESS:PORT (default 127.0.0.1). With ACCESS_LOG, every GET of an object
 * is appended there as a JSON line {method, path, status} (tests count
 * downloads with it, e.g. of registry model files). NIGHTSHIFT_S3_BYTES_PER_S
 * (tests) paces every GET's body to that rate, so a test can act while a
 * large download is under way.
 */
import { appendFileSync } from 'node:fs';
import { pipeline, Readable, Transform } from 'node:stream';
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
const bytesPerS = Number(process.env.NIGHTSHIFT_S3_BYTES_PER_S ?? 0);
if (bytesPerS > 0) {
  server.middleware.unshift(async (ctx, next) => {
    await next();
    if (ctx.method !== 'GET' || !(ctx.body instanceof Readable)) return;
    const length = ctx.length;
    const started = Date.now();
    let sent = 0;
    const paced = new Transform({
      transform(chunk: Buffer, _enc, done) {
        sent += chunk.length;
        setTimeout(() => done(null, chunk), Math.max(0, started + (sent / bytesPerS) * 1000 - Date.now()));
      },
    });
    ctx.body = pipeline(ctx.body, paced, () => undefined);
    if (length !== undefined) ctx.length = length;
  });
}
await server.run();
console.log(`s3rver listening on ${address}:${port}`);
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
