import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import { formatProblems } from '../../src/graph/index.ts';
import { planSweep } from '../../src/graph/sweep-plan.ts';
import { SweepError, splitList, type SweepAxis } from '../../src/graph/sweep.ts';
import type { Engine } from '../engine.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import type { RecipeStore } from '../recipe-store.ts';
import { runSummary, type Runs } from '../run-queue.ts';

/**
 * Sweeps from the editor or the API: the same expansion as `loraflow run --sweep` (product of
 * axes, override sets, globs over the server's roots, per-point output names), every point
 * validated before any is queued, then one run per point. With a Redis queue the points spread
 * over the workers; in-process they run one after another through the engine's cache, so shared
 * upstream results are computed once.
 */
const sweepBody = z
  .strictObject({
    recipe: z.unknown().optional(),
    recipeName: z.string().optional(),
    /** Shared by every point (`--set`). */
    overrides: z.record(z.string(), z.unknown()).default({}),
    /** Exposed name → values (a list, or "v1,v2,…" / a glob as on the command line), in product order. */
    axes: z.record(z.string(), z.union([z.array(z.unknown()).min(1), z.string().min(1)])).default({}),
    /** Explicit override sets (what a sweep file holds). */
    points: z.array(z.record(z.string(), z.unknown())).optional(),
    /** Exposed name → template, e.g. { output: "out/{name}-{w}.safetensors" }. */
    templates: z.record(z.string(), z.string().min(1)).default({}),
  })
  .refine((b) => (b.recipe === undefined) !== (b.recipeName === undefined), { message: 'give exactly one of "recipe" and "recipeName"' })
  .refine((b) => Object.keys(b.axes).length > 0 || (b.points?.length ?? 0) > 0, { message: 'a sweep needs "axes" or "points"' });

function recipeName(recipe: unknown, saved: string | undefined): string {
  if (saved !== undefined) return saved;
  const meta = (recipe as { meta?: { name?: unknown } } | undefined)?.meta;
  return typeof meta?.name === 'string' && meta.name !== '' ? meta.name : 'recipe';
}

export function sweepsRouter(engine: Engine, queue: Runs, store: RecipeStore): Router {
  const r = Router();

  r.post('/sweeps', async (req, res) => {
    const body = parseOr400(sweepBody, req.body, 'body');
    const recipe = body.recipeName !== undefined ? await store.read(body.recipeName) : body.recipe;
    const axes: SweepAxis[] = Object.entries(body.axes).map(([name, v]) => ({ name, values: typeof v === 'string' ? splitList(v) : v }));
    let plan;
    try {
      plan = await planSweep(recipe, { base: body.overrides, axes, points: body.points, templates: body.templates }, { registry: engine.registry, roots: engine.roots, cwd: engine.cwd, name: recipeName(recipe, body.recipeName) });
    } catch (e) {
      if (e instanceof SweepError) throw new ApiError(400, 'invalid_sweep', e.message);
      throw e;
    }
    for (const p of plan.points) {
      const problems = engine.validate(recipe, p.overrides);
      if (problems.length > 0) throw new ApiError(400, 'invalid_recipe', `sweep point ${p.index} (${p.label}): ${formatProblems(problems)}`, { point: p.index, problems });
    }
    const id = randomUUID();
    const total = plan.points.length;
    const runs = [];
    for (const p of plan.points) {
      const run = await queue.submit({ recipe, overrides: p.overrides, sweep: { id, index: p.index, total, label: p.label } });
      runs.push({ runId: run.id, index: p.index, label: p.label, overrides: p.overrides });
    }
    res.status(202).json({ sweepId: id, total, templates: plan.templates, runs });
  });

  r.get('/sweeps/:id', (req, res) => {
    const runs = queue.list().filter((x) => x.sweep?.id === req.params.id).reverse();
    if (runs.length === 0) throw new ApiError(404, 'unknown_sweep', `no sweep with id "${req.params.id}"`);
    const count = (s: string) => runs.filter((x) => x.status === s).length;
    res.json({
      sweepId: req.params.id,
      total: runs[0]!.sweep!.total,
      done: runs.filter((x) => !['queued', 'running'].includes(x.status)).length,
      failed: count('error') + count('cancelled'),
      runs: runs.map(runSummary),
    });
  });

  return r;
}
