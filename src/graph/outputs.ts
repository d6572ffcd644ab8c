import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { staged, stagingPathFor } from '../safetensors/staging.ts';
import type { FileFingerprint } from './cache.ts';

/**
 * Output files of a run are written to staging names beside their destinations and moved into
 * place together when the whole run has succeeded. A failed or cancelled run removes what it
 * staged (and the directories it created, when empty), so it leaves no output files at all, and
 * never a mix of new and old outputs; files that existed before are untouched. The staging names
 * are the writers' (pid-tagged, see staging.ts), so a killed process's are cleaned up or swept too.
 */
export class StagedOutputs {
  private readonly staged = new Map<string, { staging: string; nodeId: string }>();
  private readonly createdDirs: string[] = [];


  async stage(finalPath: string, nodeId: string): Promise<string> {
    const existing = this.staged.get(finalPath);
    if (existing && existing.nodeId !== nodeId) throw new Error(`${finalPath} is already written by node "${existing.nodeId}" in this run`);
    if (existing) return existing.staging;
    const created = await mkdir(dirname(finalPath), { recursive: true });
    if (created) {
      // mkdir reports the first directory it made; every directory below it down to ours is new too.
      for (let d = dirname(finalPath); d.length >= created.length; d = dirname(d)) {
        this.createdDirs.push(d);
        if (d === created) break;
      }
    }
    const staging = stagingPathFor(finalPath);
    this.staged.set(finalPath, { staging, nodeId });
    return staging;
  }

  get paths(): string[] {
    return [...this.staged.keys()];
  }

  /** Moves every staged file into place; returns the fingerprints of the written files per node. */
  async commit(): Promise<Map<string, FileFingerprint[]>> {
    for (const [finalPath, { staging, nodeId }] of this.staged) {
      const st = await stat(staging).catch(() => undefined);
      if (!st) throw new Error(`node "${nodeId}" was given ${finalPath} to write but did not write it`);
    }
    const byNode = new Map<string, FileFingerprint[]>();
    for (const [finalPath, { staging, nodeId }] of [...this.staged]) {
      await rename(staging, finalPath);
      staged(staging);
      this.staged.delete(finalPath);
      const st = await stat(finalPath);
      byNode.set(nodeId, [...(byNode.get(nodeId) ?? []), { path: finalPath, size: st.size, mtimeMs: st.mtimeMs }]);
    }
    this.createdDirs.length = 0;
    return byNode;
  }

  async rollback(): Promise<void> {
    for (const { staging } of this.staged.values()) {
      // a staging name is always one of ours (.NAME.PID.HEX.tmp): a staged folder output goes whole
      await rm(staging, { force: true, recursive: true });
      staged(staging);
    }
    this.staged.clear();
    // Deepest first; a directory that is not empty (someone else's files) stays.
    for (const d of this.createdDirs.sort((a, b) => b.length - a.length)) await rmdir(d).catch(() => undefined);
    this.createdDirs.length = 0;
  }
}
