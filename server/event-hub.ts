/**
 * One server-wide, ordered stream of run events. Every event gets the next sequence number, so a
 * client that lost its socket asks for "everything after N" and sees exactly what it missed.
 */
export interface ServerEvent {
  /** Server-wide sequence number, strictly increasing. */
  seq: number;
  /** Milliseconds since the epoch, stamped by the server. */
  time: number;
  type: string;
  /** Absent only for server status events (queue length), which belong to no run. */
  runId?: string;
  nodeId?: string;
  [field: string]: unknown;
}

export interface EventInput {
  type: string;
  runId?: string;
  nodeId?: string;
  time?: number;
  [field: string]: unknown;
}

export type Listener = (e: ServerEvent) => void;

export class EventHub {
  private next = 1;
  private readonly log: ServerEvent[] = [];
  private readonly listeners = new Set<Listener>();

  /** `capacity` bounds memory: older events drop off the replay window (runs keep their own logs). */
  constructor(private readonly capacity = 20_000) {}

  publish(input: EventInput): ServerEvent {
    const e: ServerEvent = { ...input, seq: this.next++, time: input.time ?? Date.now() };
    this.log.push(e);
    if (this.log.length > this.capacity) this.log.splice(0, this.log.length - this.capacity);
    for (const l of this.listeners) l(e);
    return e;
  }

  /** The last sequence number handed out (0 before any event). */
  get lastSeq(): number {
    return this.next - 1;
  }

  /** The oldest sequence number still replayable, or lastSeq + 1 when the log is empty. */
  get firstSeq(): number {
    return this.log[0]?.seq ?? this.next;
  }

  /** Events with seq > `since`, in order; `complete` is false when some of them already fell out of the window. */
  since(since: number): { events: ServerEvent[]; complete: boolean } {
    const complete = since + 1 >= this.firstSeq || this.lastSeq === 0;
    // seqs are contiguous in the log, so the start index is a subtraction, not a search.
    const start = Math.max(0, since + 1 - this.firstSeq);
    return { events: this.log.slice(start), complete };
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
