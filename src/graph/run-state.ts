/**
 * One run in progress: the values and summaries of the nodes so far, the outputs waiting for the
 * commit, what to dispose at the end, and the node running now (so a failure names it). The
 * context a node runs with (progress throttled and cancellable, staged output paths, a private
 * temp directory, provenance) is made here too.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunEventEmitter } from './events.ts';
import type { Provenance, RunContext } from './node.ts';
import { StagedOutputs } from './outputs.ts';
import type { PathResolver } from './roots.ts';
import type { PlannedNode } from './validate.ts';

export function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : Object.assign(new Error('cancelled'), { name: 'AbortError' });
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortError(signal);
}

export interface PendingOutput {
  id: string;
  node: PlannedNode;
  outputs: Record<string, unknown>;
  summary: unknown;
}

export class RunState {
  readonly values = new Map<string, Record<string, unknown>>();
  readonly summaries = new Map<string, unknown>();
  readonly executed: string[] = [];
  readonly staged = new StagedOutputs();
  readonly toDispose: (() => void | Promise<void>)[] = [];
  /** Output nodes' results, cached only once their files are committed. */
  readonly pendingOutputs: PendingOutput[] = [];
  tempDir?: Promise<string>;
  current?: PlannedNode;
  currentInputs?: Record<string, unknown>;

  constructor(
    readonly runId: string,
    readonly events: RunEventEmitter,
    readonly signal: AbortSignal,
    private readonly env: { resolvePath: PathResolver; progressIntervalMs?: number; tempRoot?: string; provenance: Omit<Provenance, 'nodeId'> },
  ) {}

  context(node: PlannedNode): RunContext {
    const { signal, events, staged } = this;
    const { resolvePath } = this.env;
    let lastEmit = -Infinity;
    const interval = this.env.progressIntervalMs ?? 100;
    const at = { nodeId: node.id, nodeType: node.def.type };
    const progress = (value: number, max: number, label?: string): void => {
      throwIfAborted(signal);
      const now = performance.now();
      if (value <= 0 || value >= max || now - lastEmit >= interval) {
        lastEmit = now;
        events.emit({ type: 'node.progress', ...at, value, max, ...(label !== undefined ? { label } : {}) });
      }
    };
    const log = (message: string): void => void events.emit({ type: 'node.log', ...at, message });
    return {
      runId: this.runId,
      nodeId: node.id,
      nodeType: node.def.type,
      signal,
      progress,
      log,
      resolvePath,
      outputPath: (value, kind = 'output') => staged.stage(resolvePath(value, kind), node.id),
      tempDir: () => (this.tempDir ??= mkdtemp(join(this.env.tempRoot ?? tmpdir(), 'loraflow-run-'))),
      provenance: (): Provenance => ({ ...this.env.provenance, nodeId: node.id }),
      op: { signal, onProgress: progress, log },
    };
  }
}
