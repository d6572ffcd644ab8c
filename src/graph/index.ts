/** The graph engine: recipes, node definitions, validation, scheduling, caching, events, execution. Knows nothing about LoRAs. */
export { RunCache, cacheKey, fingerprintFile, type CacheEntry, type FileFingerprint } from './cache.ts';
export { canonicalRecipe, recipeToJson, sortKeysDeep, stableStringify, withoutUi } from './canonical.ts';
export { describeValue, jsonSafe } from './describe.ts';
export { RunEventEmitter, type PlanInfo, type RunEvent, type RunEventListener, type RunEventType } from './events.ts';
export { runRecipe, type RunError, type RunOptions, type RunOutcome, type RunResult, type RunStatus } from './execute.ts';
export { RECIPE_MIGRATIONS, migrateNodeDoc, migrateRecipeDoc, type RecipeMigration } from './migrate.ts';
export {
  defineNode, nodeDefinitionJson, nodeDefinitionsJson, pathParam,
  type InputPort, type InputValues, type NodeDefinition, type NodeDefinitionJson, type NodeMigration, type NodeSpec,
  type OpContextLike, type OutputPort, type OutputValues, type PortValueTypes, type Provenance, type RunContext,
} from './node.ts';
export { parseExposePath, parseSetArgs } from './overrides.ts';
export { formatPortType, isPortType, parsePortType, portAccepts, type PortType } from './ports.ts';
export {
  PROVENANCE_KEY, ProvenanceError, bakeOverrides, decodeProvenance, provenanceMetadata, storedProvenance, type RecoveredRecipe,
} from './provenance.ts';
export { RecipeInvalidError, formatProblem, formatProblems, type Problem, type ProblemCode } from './problems.ts';
export {
  RECIPE_FORMAT, RECIPE_SCHEMA_VERSION, RecipeParseError, RecipeSchema, exposePath, parseRecipeText, readRecipeFile, recipeJsonSchema,
  type Recipe, type RecipeNode,
} from './recipe.ts';
export { NodeRegistry } from './registry.ts';
export { PathEscapeError, createPathResolver, rootsFor, type PathResolver, type RootsConfig } from './roots.ts';
export { validateRecipe, type Plan, type PlannedNode, type ValidateOptions, type ValidateResult } from './validate.ts';
export { LORAFLOW_VERSION } from './version.ts';
export { GraphWorker, runRecipeInWorker, type GraphWorkerOptions, type RunHandle, type WorkerRunOptions } from './worker.ts';
