import { parentPort, workerData } from 'node:worker_threads';
import { faultOf } from '../errors.ts';
import { RunCache } from './cache.ts';
import { runRecipe, type RunResult } from './execute.ts';
import { NodeRegistry } from './registry.ts';
import type { FromWorker, ToWorker, WorkerData } from './worker-protocol.ts';

/**
 * The worker side of `GraphWorker`: loads the node package named in workerData, then runs recipes
 * one at a time with a cache that lives as long as the worker, posting every event back.
 */

const port = parentPort!;
const data = workerData as WorkerData;
const post = (m: FromWorker) => port.postMessage(m);
const controllers = new Map<string, AbortController>();
const cache = new RunCache();

const ready = (async () => {
  const mod = (await import(data.nodesModule)) as { registry?: unknown; setup?: (options: unknown) => unknown };
  if (!(mod.registry instanceof NodeRegistry)) throw new Error(`${data.nodesModule} does not export a NodeRegistry named "registry"`);
  if (typeof mod.setup === 'function') await mod.setup(data.setup);
  return mod.registry;
})();
ready.catch((e: Error) => post({ type: 'fatal', message: `cannot load nodes from ${data.nodesModule}: ${e.message}`, stack: e.stack }));

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'cancel') {
    controllers.get(msg.runId)?.abort();
    return;
  }
  const { runId } = msg.request;
  const controller = new AbortController();
  controllers.set(runId, controller);
  void (async () => {
    let result: RunResult;
    try {
      const registry = await ready;
      const { values: _values, ...rest } = await runRecipe(msg.recipe, {
        ...msg.request,
        registry,
        cache,
        signal: controller.signal,
        onEvent: (event) => post({ type: 'event', runId, event }),
      });
      result = rest;
    } catch (e) {
      const err = e as Error;
      result = { runId, status: 'error', ms: 0, outputs: {}, written: [], executed: [], cached: [], error: { errorName: err.name, fault: faultOf(err), message: err.message } };
    }
    controllers.delete(runId);
    post({ type: 'result', runId, result });
  })();
});
