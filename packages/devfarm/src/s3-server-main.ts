/** Entry point: `s3-server-main.ts PORT DIR [ADDRESS]` runs s3rver on ADDRESS:PORT (default 127.0.0.1). */
import S3rver from 's3rver';

const [port, directory, address = '127.0.0.1'] = process.argv.slice(2);
if (!port || !directory) {
  console.error('usage: s3-server-main.ts PORT DIR [ADDRESS]');
  process.exit(2);
}
const server = new S3rver({ address, port: Number(port), directory, silent: true, vhostBuckets: false });
await server.run();
console.log(`s3rver listening on ${address}:${port}`);
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
