/**
 * loraflow's node types, one file each, and the registry the CLI, the server and worker runs use.
 * `setup` prepares the process for running them (the compute backend).
 */
import { NodeRegistry } from '../src/graph/registry.ts';
import { BACKEND_CHOICES, isBackendChoice, useBackend } from '../src/tensor/backend.ts';
import { blockWeights } from './block-weights.ts';
import { convert } from './convert.ts';
import { extractLora } from './extract-lora.ts';
import { filter } from './filter.ts';
import { inspect } from './inspect.ts';
import { loadLora } from './load-lora.ts';
import { loadModel } from './load-model.ts';
import { mergeCheckpointsNode } from './merge-checkpoints.ts';
import { mergeIntoBase } from './merge-into-base.ts';
import { mergeLoras } from './merge-loras.ts';
import { plot } from './plot.ts';
import { resizeLora } from './resize-lora.ts';
import { saveLora } from './save-lora.ts';
import { saveModel } from './save-model.ts';
import { scale } from './scale.ts';

export const nodeDefinitions = [
  loadLora, loadModel, inspect, convert, filter, scale, blockWeights, mergeLoras, mergeIntoBase, mergeCheckpointsNode, extractLora, resizeLora, saveLora, saveModel, plot,
];

export const registry = new NodeRegistry(nodeDefinitions);

/** This module's URL: what `runRecipeInWorker` / `GraphWorker` take as `nodesModule`. */
export const NODES_MODULE = import.meta.url;

export interface SetupOptions {
  backend?: string;
}

/** Called once per process (and by worker runs with the worker's `setup` option). */
export async function setup(options: SetupOptions = {}): Promise<void> {
  if (options.backend === undefined) return;
  if (!isBackendChoice(options.backend)) throw new Error(`unknown backend "${options.backend}" (${BACKEND_CHOICES.join(', ')})`);
  await useBackend(options.backend);
}

export type { LoraValue, ModelValue, ReportValue } from './types.ts';
