/** The formats layer: detection, readers and writers between LoRA files and the canonical adapter model. */
export * from '../adapter/model.ts';
export { LoraFormatError, type LoraFormatErrorCode } from '../adapter/errors.ts';
export { detectFormat, assertWritable, formatDetection, type Detection, type ModuleSummary } from './detect.ts';
export { assertFlux } from './flux/assert.ts';
export type { Coverage } from './family.ts';
export { detectFile } from './inspect.ts';
export { checkpointArchitecture, type CheckpointGuess } from './checkpoint-family.ts';
export { FAMILIES, familyOf, labelOf } from './families.ts';
export type { Family, BlockScheme } from './family.ts';
export { openLora, readLora, type LoraFile, type LoraHandle } from './read.ts';
export { writeLora, type WriteOptions, type WriteReport } from './write/index.ts';
export { parseFormatName, WRITE_FORMATS, type WriteFormat } from './write/names.ts';
export { convertLora, type ConvertOptions, type ConvertReport } from './convert.ts';
export { fuseTargetPatches, fuseLoraPieces, type LoraPiece, type FusedLora } from './fuse.ts';
export { splitLora, blockDiagonalColumns, type SplitPart, type SplitPiece } from './split.ts';
