import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';

/**
 * A private `redis-server` for tests and benchmarks: on a free loopback port, nothing saved to disk
 * (`--save '' --appendonly no`), stopped by `stop()`. Never the system service.
 */

export interface TestRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Whether the Debian `redis-server` package (or any redis-server on PATH) is installed. */
export function redisServerInstalled(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function startOn(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => fail(new Error(`redis-server did not start on port ${port} within 10 s: ${out}`)), 10_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`redis-server exited with code ${code}: ${out}`)));
    // Ready once the port accepts a connection (independent of the log's wording).
    const poll = setInterval(() => {
      const probe = connect(port, '127.0.0.1');
      probe.once('connect', () => {
        probe.destroy();
        clearInterval(poll);
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(child);
      });
      probe.once('error', () => probe.destroy());
    }, 50);
    const collect = (d: Buffer) => void (out += d.toString());
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.once('exit', () => clearInterval(poll));
  });
}

export async function startTestRedis(): Promise<TestRedis> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      const child = await startOn(port);
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        stop: () =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      };
    } catch (e) {
      lastError = e as Error; // the port was taken in between: try another
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}
