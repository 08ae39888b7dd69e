/** Running the farm's own processes (`up`, `node start`) in the foreground, from this checkout. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root this CLI runs from. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs a child with our stdio; Ctrl-C reaches it through the terminal and we wait for it to finish. */
export function runChild(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<number> {
  return new Promise((resolveCode, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolveCode(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1));
    });
  });
}
