/**
 * What `loraflow inspect` and `/api/inspect` report of one file: the header summary (the tensor
 * list cut to a window) and the detected format. Reads the header only.
 */
import { withSafetensors } from '../safetensors/reader.ts';
import { summarizeSafetensors, type SafetensorsSummary, type SummaryWindow } from '../safetensors/summary.ts';
import type { Detection } from './detect.ts';
import { detectFile } from './inspect.ts';

export interface Inspection {
  summary: SafetensorsSummary;
  detection: Detection;
}

export function inspectFile(path: string, window: SummaryWindow = {}): Promise<Inspection> {
  return withSafetensors(path, async (f) => ({ summary: summarizeSafetensors(f, window), detection: await detectFile(f) }));
}
