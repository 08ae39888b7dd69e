/**
 * Simulated gpu-nodes for benchmarks: N Connect streams in one process, each
 * "rendering" instantly (reports every job completed the moment it arrives).
 * Nothing is uploaded: bench/dispatch.ts stores the objects beforehand, so the
 * coordinator's storage check of each report finds them.
 *   sim-nodes.ts ADDRESS N coordinator   — until SIGTERM; prints completions
 *   sim-nodes.ts ADDRESS N echo SECONDS  — bare round trips against bench echo server
 */
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { ConnectRequestSchema, createClient, NodeService, type ConnectResponse } from '@nightshift/proto';
import { PROCEDURAL_MODEL } from '@nightshift/sweep';

const [address, countText, mode, secondsText] = process.argv.slice(2);
const count = Number(countText);
const client = createClient(NodeService, address!, grpc.credentials.createInsecure());
let completed = 0;
const streams: grpc.ClientDuplexStream<unknown, ConnectResponse>[] = [];

for (let i = 0; i < count; i++) {
  const stream = client.connect();
  streams.push(stream as never);
  stream.write(
    create(ConnectRequestSchema, {
      msg: { case: 'register', value: { nodeId: `sim-${i}`, name: `sim-${i}`, capabilities: { gpuName: 'sim', vramMb: 24_576n, backends: ['procedural'], models: [PROCEDURAL_MODEL], slots: 1 } } },
    }),
  );
  stream.on('data', (res: ConnectResponse) => {
    if (res.msg.case === 'assign') {
      const a = res.msg.value;
      stream.write(
        create(ConnectRequestSchema, {
          msg: { case: 'completed', value: { jobId: a.jobId, renderKey: a.renderKey, imageKey: `images/${a.renderKey}.png`, thumbKey: `thumbs/${a.renderKey}.webp`, renderMs: 0 } },
        }),
      );
      completed++;
    }
  });
  stream.on('error', () => {});
}

if (mode === 'echo') {
  setTimeout(() => {
    console.log(JSON.stringify({ roundTrips: completed }));
    process.exit(0);
  }, Number(secondsText) * 1000);
} else {
  process.on('SIGTERM', () => {
    console.log(JSON.stringify({ completed }));
    process.exit(0);
  });
}
