/** The LoRA operations: what graph nodes and CLI commands call. */
export { checkAborted, type OpContext, type ProgressFn } from './context.ts';
export {
  FLUX_BLOCK_IDS, applyBlockWeights, blockOf, checkBlockWeightSpec, isFluxBlockId, parseBlockWeights,
  type BlockWeightReport, type BlockWeightSpec, type BlockWeights,
} from './blocks.ts';
export { filterPatches, type FilterOptions, type FilterReport } from './filter.ts';
export { scalePatch, scalePatches, scaleSet, type ScaleOutcome, type ScaleReport } from './scale.ts';
export {
  mergeLoras,
  type MergeInput, type MergeMethod, type MergeOptions, type MergeReport, type MergedModule, type RefactoredModule,
} from './merge.ts';
export { applyToBase, type ApplyFileReport, type ApplyOptions, type ApplyReport } from './apply.ts';
export { extractLora, type ExtractOptions, type ExtractReport, type ExtractedModule } from './extract.ts';
export { resizeLora, type ResizeOptions, type ResizeReport, type ResizedModule } from './resize.ts';
export { type RankChoice } from './lowrank.ts';
