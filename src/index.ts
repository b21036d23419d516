/**
 * cubbydb: a table-less hash key-value store for Node.js.
 *
 * This is the package's public surface. Everything exported here is part of
 * the API contract (docs/api.md); everything else is internal.
 */

export { CubbyError, ErrorCode, isCubbyError, type CubbyErrorCode } from './errors'
export {
  CubbyDB,
  DEFAULTS,
  DEFAULT_COMPRESSION,
  open,
  plan,
  type BatchOperation,
  type Key,
  type OpenOptions,
  type PlanOptions,
  type Stats,
  type Value,
  type WriteOptions,
} from './db'
export type { Plan } from './engine/sizing'
export {
  checkStore,
  checkVolume,
  salvageStore,
  salvageVolume,
  type CheckOptions,
  type CheckProblem,
  type CheckReport,
  type SalvageReport,
} from './check'
export type { CompressionMode } from './device/open'
export { exportStore, importStore, DumpReader, DUMP_VERSION, type DumpHeader, type DumpSummary, type DumpFrame, type ExportOptions, type ImportOptions } from './dump'
export { METRICS_CONTENT_TYPES, type MetricsFormat } from './metrics/exposition'
export type { MetricsOptions } from './metrics/collect'
