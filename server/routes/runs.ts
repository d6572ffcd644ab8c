import { Router } from 'express';
import { z } from 'zod';
import { bakeOverrides } from '../../src/graph/index.ts';
import type { Engine } from '../engine.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import type { RecipeStore } from '../recipe-store.ts';
import { runSummary, type RunJob, type Runs } from '../run-queue.ts';

const FINISHED = new Set(['success', 'error', 'cancelled']);

/** The recipe and overrides of a run, or a 410 when this server never learnt them. */
async function jobOf(queue: Runs, id: string): Promise<RunJob> {
  const job = await queue.job(id);
  if (job.recipe === undefined) throw new ApiError(410, 'recipe_unknown', `the recipe of run "${id}" is not known here: it was submitted to the queue by another server, and its job is no longer on Redis`);
  return { recipe: job.recipe, overrides: job.overrides };
}

/** Either the recipe itself or the name of a saved one; overrides set exposed params by name. */
const runBody = z
  .strictObject({
    recipe: z.unknown().optional(),
    recipeName: z.string().optional(),
    overrides: z.record(z.string(), z.unknown()).default({}),
  })
  .refine((b) => (b.recipe === undefined) !== (b.recipeName === undefined), { message: 'give exactly one of "recipe" and "recipeName"' });

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

/**
 * Runs: validated in full before they are queued (an invalid recipe is a 400 carrying the same
 * per-node report `loraflow run` prints), then executed one at a time by the engine's worker, or
 * by `loraflow worker` processes when the server has a Redis queue.
 */
export function runsRouter(engine: Engine, queue: Runs, store: RecipeStore): Router {
  const r = Router();

  r.post('/runs', async (req, res) => {
    const body = parseOr400(runBody, req.body, 'body');
    const recipe = body.recipeName !== undefined ? await store.read(body.recipeName) : body.recipe;
    engine.assertValid(recipe, body.overrides);
    const run = await queue.submit({ recipe, overrides: body.overrides });
    res.status(202).json({ runId: run.id, status: run.status, queuePosition: queue.queueLength });
  });

  r.get('/runs', (req, res) => {
    const q = parseOr400(listQuery, req.query, 'query');
    const all = queue.list();
    res.json({ total: all.length, queue: queue.kind, running: queue.runningId ?? null, runningIds: queue.runningIds, queued: queue.queueLength, runs: all.slice(q.offset, q.offset + q.limit).map(runSummary) });
  });

  r.get('/runs/:id', (req, res) => {
    res.json(queue.get(req.params.id));
  });

  // History: a past run's recipe opens again in the editor, or runs again as a new run.
  r.get('/runs/:id/recipe', async (req, res) => {
    const run = queue.get(req.params.id);
    const job = await jobOf(queue, run.id);
    // what the editor opens: the overrides written into the params they set, so it runs as it ran
    res.json({ runId: run.id, status: run.status, ...job, baked: bakeOverrides(job.recipe as Record<string, unknown>, job.overrides) });
  });

  r.post('/runs/:id/rerun', async (req, res) => {
    const run = queue.get(req.params.id);
    if (!FINISHED.has(run.status)) throw new ApiError(409, 'run_not_finished', `run "${run.id}" is ${run.status}; re-run it once it has finished`);
    const job = await jobOf(queue, run.id);
    engine.assertValid(job.recipe, job.overrides);
    const again = await queue.submit({ ...job, rerunOf: run.id });
    res.status(202).json({ runId: again.id, status: again.status, queuePosition: queue.queueLength, rerunOf: run.id });
  });

  r.post('/runs/:id/cancel', async (req, res) => {
    const run = await queue.cancel(req.params.id);
    res.status(202).json({ runId: run.id, status: run.status });
  });

  return r;
}
