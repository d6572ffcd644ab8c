import type { Fault } from '../errors.ts';
import type { Problem } from './problems.ts';

/**
 * Run events. Every event carries the run id, a sequence number (monotonic within the run, so a
 * client can resume from the last one it saw) and a timestamp; node events carry the node id.
 */

interface Base {
  runId: string;
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
}

interface NodeBase extends Base {
  nodeId: string;
  nodeType: string;
}

export interface PlanInfo {
  /** Nodes needed by the targets, in execution order. */
  order: string[];
  targets: string[];
  /** Nodes whose results come from the cache. */
  cached: string[];
  /** Nodes that will run. */
  run: string[];
  /** Nodes not needed because everything downstream is cached. */
  skipped: string[];
  /** Files the run writes (resolved paths). */
  writes: string[];
  /** Migrations applied to the recipe on load. */
  migrations: string[];
}

export type RunEvent =
  | (Base & { type: 'run.invalid'; problems: Problem[] })
  | (Base & { type: 'run.plan'; plan: PlanInfo })
  | (Base & { type: 'run.start'; plan: PlanInfo })
  | (NodeBase & { type: 'node.cached'; summary: unknown })
  | (NodeBase & { type: 'node.start'; title: string })
  | (NodeBase & { type: 'node.progress'; value: number; max: number; label?: string })
  | (NodeBase & { type: 'node.log'; message: string })
  | (NodeBase & { type: 'node.done'; ms: number; summary: unknown })
  | (Base & { type: 'run.success'; ms: number; outputs: Record<string, unknown>; written: string[] })
  | (Base & {
      type: 'run.error';
      ms: number;
      nodeId?: string;
      nodeType?: string;
      title?: string;
      errorName: string;
      code?: string;
      fault: Fault;
      message: string;
      stack?: string;
      /** A summary of each input value the failing node received. */
      inputs?: Record<string, unknown>;
      params?: Record<string, unknown>;
      /** Nodes that had completed (run or cached) before the failure. */
      executed: string[];
    })
  | (Base & { type: 'run.cancelled'; ms: number; nodeId?: string; nodeType?: string; executed: string[] });

export type RunEventType = RunEvent['type'];

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type RunEventInit = DistributiveOmit<RunEvent, 'runId' | 'seq' | 'time'>;

export type RunEventListener = (event: RunEvent) => void;

/** Stamps run id, sequence number and time, and hands events to the listener. */
export class RunEventEmitter {
  private seq = 0;
  readonly log: RunEvent[] = [];

  constructor(
    readonly runId: string,
    private readonly listener?: RunEventListener,
    private readonly keepLog = false,
  ) {}

  emit(init: RunEventInit): RunEvent {
    const event = { ...init, runId: this.runId, seq: ++this.seq, time: Date.now() } as RunEvent;
    if (this.keepLog) this.log.push(event);
    this.listener?.(event);
    return event;
  }
}
