import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { pidExists, processAlive } from './process-alive.js';
import { sleep } from './sleep.js';

const sleeper = (opts: { detached?: boolean } = {}) => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore', ...opts });

test('processAlive: a running process yes; an exited one, or no pid, no', async () => {
  assert.equal(processAlive(process.pid), true);
  assert.equal(processAlive(0), false);
  assert.equal(processAlive(-1), false);
  const child = sleeper();
  await once(child, 'spawn');
  assert.equal(processAlive(child.pid!), true);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(processAlive(child.pid!), false);
});

test('processAlive: a zombie (exited, never waited for) is not alive though it still answers signal 0', { skip: !existsSync('/proc/self/stat') && 'no /proc' }, async () => {
  // The shell starts a child in the background, then becomes `sleep`, which never reaps it. The child
  // exits only once its parent is `sleep`: exiting earlier, the shell itself might reap it first.
  const waitForExec = 'p=$$; (while [ "$(cat /proc/$p/comm)" != sleep ]; do sleep 0.01; done) & echo $!; exec sleep 60';
  const parent = spawn('sh', ['-c', waitForExec], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const zombie = Number(String(line).trim());
    const state = () => readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1]!.charAt(0);
    // Waits for the state, however loaded the machine (the test's own timeout bounds it).
    while (state() !== 'Z') await sleep(10);
    assert.equal(state(), 'Z');
    assert.equal(pidExists(zombie), true);
    assert.equal(processAlive(zombie), false);
  } finally {
    parent.kill('SIGKILL');
  }
});

test('pidExists: a process group answers while it has a member', async () => {
  assert.equal(pidExists(process.pid), true);
  const child = sleeper({ detached: true });
  await once(child, 'spawn');
  assert.equal(pidExists(-child.pid!), true);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(pidExists(-child.pid!), false);
});
