/** Entry point: `s3-server-main.ts PORT DIR` runs s3rver on 127.0.0.1:PORT. */
import S3rver from 's3rver';

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error('usage: s3-server-main.ts PORT DIR');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, vhostBuckets: false });
await server.run();
console.log(`s3rver listening on 127.0.0.1:${port}`);
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
