/**
 * Where the writer's bytes go: appended in order to a new file, then flushed to the device.
 *
 * On Linux the file is written with O_DIRECT where the filesystem allows it: the bytes go from
 * aligned staging buffers straight to the device instead of being copied into new page-cache
 * pages and flushed by fsync afterwards. On this project's VM a 4.26 GB file took 2.5–3.0 s that
 * way against 9.4–12.2 s written through the page cache and synced (`dd oflag=direct` against
 * `dd conv=fsync`), with a tenth of the kernel CPU time, which the math then has for itself. A
 * model file is written once and read later by another program, so the page cache gains nothing
 * from holding it. Elsewhere, or where the filesystem refuses O_DIRECT (tmpfs on older kernels),
 * positional writes through the page cache do the same job.
 */
import { constants, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

export interface Sink {
  /** Whether bytes go to the device directly (O_DIRECT) rather than through the page cache. */
  readonly direct: boolean;
  /** Appends bytes at the end; `bytes` may be reused once the promise settles. Calls must not overlap. */
  append(bytes: Uint8Array): Promise<void>;
  /** Writes what is staged, sets the exact length and flushes data and metadata to the device. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

/** Device block alignment for O_DIRECT buffers, offsets and lengths (the largest in common use). */
const ALIGN = 4096;
/**
 * Staging buffers and bytes per direct write. Up to STAGES writes are in flight at once, so the
 * device stays busy while the calling thread computes and gets round to staging more only now
 * and then (with two 8 MiB stages, merging a LoRA into a 4.26 GB base waited 3.0 s on its writes
 * after 3.5 s of math; with four of 16 MiB, 1.0 s).
 */
export const STAGES = 4;
export const STAGE = 16 << 20;

/**
 * Opens `path` (which must not exist) for appending, direct where possible unless `direct` is
 * false or the environment sets LORAFLOW_DIRECT_IO=0 (for filesystems that accept O_DIRECT but
 * misbehave with it).
 */
export async function openSink(path: string, opts: { direct?: boolean } = {}): Promise<Sink> {
  const wanted = opts.direct ?? process.env.LORAFLOW_DIRECT_IO !== '0';
  const direct = wanted ? await DirectSink.open(path) : undefined;
  return direct ?? new BufferedSink(await open(path, 'wx'));
}

class BufferedSink implements Sink {
  readonly direct = false;
  private position = 0;
  constructor(private readonly handle: FileHandle) {}

  async append(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, Math.min(1 << 30, bytes.byteLength - done), this.position + done);
      done += bytesWritten;
    }
    this.position += bytes.byteLength;
  }

  async finish(): Promise<void> {
    await this.handle.sync();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A staging buffer whose bytes start at a device-aligned address, and its write while one is in flight. */
interface Stage {
  buffer: Uint8Array;
  /** Offset of the aligned start within `buffer`. */
  at: number;
  writing?: Promise<void>;
}

class DirectSink implements Sink {
  readonly direct = true;
  private position = 0;
  private fill = 0;
  private current = 0;

  private constructor(private readonly handle: FileHandle, private readonly stages: Stage[]) {}

  /** A direct sink, a buffered one where direct writes fail at every address, or undefined where the filesystem has no direct I/O. */
  static async open(path: string): Promise<Sink | undefined> {
    if (constants.O_DIRECT === undefined) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT, 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EINVAL') return undefined; // the filesystem has no direct I/O
      throw e;
    }
    const stages = Array.from({ length: STAGES }, () => alignedStage(handle.fd));
    if (stages.every((stage) => stage !== undefined)) return new DirectSink(handle, stages);
    // Direct writes refused at every address: write this file through the page cache instead.
    await handle.close();
    return new BufferedSink(await open(path, 'w'));
  }

  private view(stage: Stage, length: number): Uint8Array {
    return stage.buffer.subarray(stage.at, stage.at + length);
  }

  async append(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const stage = this.stages[this.current]!;
      if (this.fill === 0) await stage.writing;
      const n = Math.min(STAGE - this.fill, bytes.byteLength - done);
      this.view(stage, STAGE).set(bytes.subarray(done, done + n), this.fill);
      this.fill += n;
      done += n;
      if (this.fill === STAGE) this.startWrite(STAGE);
    }
  }

  /**
   * Starts writing the current stage (not awaited: its write goes on in libuv's pool whatever the
   * calling thread does meanwhile) and moves to the next stage.
   */
  private startWrite(length: number): void {
    const stage = this.stages[this.current]!;
    stage.writing = this.writeAll(this.view(stage, length), this.position);
    // A failure surfaces when the stage is next awaited; until then it must not count as unhandled.
    stage.writing.catch(() => undefined);
    this.position += length;
    this.current = (this.current + 1) % this.stages.length;
    this.fill = 0;
  }

  private async writeAll(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, position + done);
      if (bytesWritten % ALIGN !== 0 && done + bytesWritten < bytes.byteLength) throw new Error(`short direct write of ${bytesWritten} bytes`);
      done += bytesWritten;
    }
  }

  async finish(): Promise<void> {
    const length = this.position + this.fill;
    if (this.fill > 0) {
      // The last block goes out whole (direct writes are whole blocks); the length is then cut back.
      const stage = this.stages[this.current]!;
      this.view(stage, STAGE).fill(0, this.fill, Math.ceil(this.fill / ALIGN) * ALIGN);
      this.startWrite(Math.ceil(this.fill / ALIGN) * ALIGN);
    }
    await Promise.all(this.stages.map((stage) => stage.writing));
    if (this.position !== length) await this.handle.truncate(length);
    await this.handle.sync();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.stages.map((stage) => stage.writing));
    await this.handle.close();
  }
}

/**
 * A STAGE-byte buffer at a device-aligned address. JavaScript cannot see addresses, so this tries
 * each 16-byte offset of an over-allocated buffer with a one-block direct write at the start of
 * the new file (rewritten later); the kernel refuses misaligned ones with EINVAL before any I/O.
 * Undefined when no offset works or the write fails otherwise (the file is then written buffered).
 */
function alignedStage(fd: number): Stage | undefined {
  const buffer = new Uint8Array(new ArrayBuffer(STAGE + ALIGN));
  for (let at = 0; at < ALIGN; at += 16) {
    try {
      writeSync(fd, buffer, at, ALIGN, 0);
      return { buffer, at };
    } catch (e) {
      // EINVAL: misaligned, try the next offset; anything else: no direct writes on this file.
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') return undefined;
    }
  }
  return undefined;
}
