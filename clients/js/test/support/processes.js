// Child processes that cannot outlive the test process: each is started
// through a tiny exec wrapper that asks the kernel to SIGKILL it when its
// parent dies (PR_SET_PDEATHSIG), so even a killed test run leaves no
// database or relay behind.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const TIE_TO_PARENT =
  'import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); os.execv(sys.argv[1], sys.argv[1:])';

/**
 * Starts `command` and resolves once a line of its output matches `ready`,
 * with the match. Rejects if it exits or stays silent for `timeout` ms.
 */
export function startProcess(command, args, { env, cwd, ready, timeout = 60_000, name = command }) {
  const child = spawn('python3', ['-c', TIE_TO_PARENT, command, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const log = [];
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${timeout} ms:\n${log.join('\n')}`)), timeout);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (raw) => {
        const line = raw.replace(/\x1b\[[0-9;]*m/g, '');
        log.push(line);
        if (log.length > 200) log.shift();
        if (process.env.ROOMCAST_TEST_LOG) console.error(`[${name}] ${line}`);
        const match = line.match(ready);
        if (match) {
          clearTimeout(timer);
          resolve(match);
        }
      });
    }
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready:\n${log.join('\n')}`));
    });
  });
  // Whatever happens to the test, a child left running is killed at exit.
  const killAtExit = () => child.kill('SIGKILL');
  process.once('exit', killAtExit);
  return {
    child,
    started,
    log,
    /** Sends `signal` and resolves when the process is gone. */
    async stop(signal = 'SIGTERM', grace = 20_000) {
      process.off('exit', killAtExit);
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), grace);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}
