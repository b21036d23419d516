/**
 * `db.metrics()`: one store's state and activity as an OpenMetrics (or
 * Prometheus text) exposition.
 *
 * Every figure comes from something the store keeps anyway: `stats()`, the
 * block device's own counters, the engine's group-commit histogram, and the
 * handle's per-call meter (./operations.ts). Collecting is a snapshot: it
 * takes no lock and does no I/O, so a scrape never waits behind the store.
 * The families and what each means are listed in docs/api.md ("metrics()");
 * names, label names and units never change meaning.
 *
 * Called by src/db.ts, which has checked that the store is open.
 */

import { invalidArgument } from '../errors'
import type { DeviceStats } from '../device/types'
import type { CompressedDeviceStats } from '../device/compressed'
import type { EngineStats } from '../engine/engine'
import { Exposition, LABEL_NAME, type MetricsFormat, renderLabels } from './exposition'
import type { Histogram } from './histogram'
import { OPERATION_KINDS, type OperationMeter } from './operations'

/** Options of metrics(). */
export interface MetricsOptions {
  /** 'openmetrics' (default; ends with `# EOF`) or 'prometheus' (text format 0.0.4, for appending to another registry's output). */
  format?: MetricsFormat
  /** Labels added to every sample, e.g. `{ store: 'sessions' }` to tell several stores apart. */
  labels?: Record<string, string>
}

/** Label names the families use themselves; a constant label may not take them. */
const RESERVED_LABELS = new Set(['le', 'op', 'result', 'part', 'compression', 'io_path', 'format_version'])

export interface MetricsSettings {
  format: MetricsFormat
  constantLabels: string
}

export function validateMetricsOptions(raw: unknown): MetricsSettings {
  if (raw === undefined) return { format: 'openmetrics', constantLabels: '' }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidArgument('metrics() options must be an object')
  const options = raw as Record<string, unknown>
  for (const name of Object.keys(options)) if (name !== 'format' && name !== 'labels') throw invalidArgument(`unknown metrics() option ${JSON.stringify(name)}`)
  const format = options.format ?? 'openmetrics'
  if (format !== 'openmetrics' && format !== 'prometheus') throw invalidArgument(`metrics() option format must be 'openmetrics' or 'prometheus'`)
  const labels = options.labels ?? {}
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw invalidArgument('metrics() option labels must be an object of strings')
  for (const [name, value] of Object.entries(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw invalidArgument(`metrics() label name ${JSON.stringify(name)} is not a valid label name`)
    if (RESERVED_LABELS.has(name)) throw invalidArgument(`metrics() label name ${JSON.stringify(name)} is used by CubbyDB's own metrics`)
    if (typeof value !== 'string') throw invalidArgument(`metrics() label ${name} must be a string`)
  }
  return { format, constantLabels: renderLabels(labels as Record<string, string>) }
}

export interface MetricsSource {
  stats: EngineStats
  device: DeviceStats
  groupCommitSizes: Histogram
  operations: OperationMeter
}

function isCompressed(device: DeviceStats): device is CompressedDeviceStats {
  return device.mode === 'lz4'
}

/** The exposition of `source` in the format `settings` ask for. */
export function renderMetrics(source: MetricsSource, settings: MetricsSettings): string {
  const { stats, device, operations } = source
  const out = new Exposition(settings.format, settings.constantLabels)

  out.family('cubby_store', 'info', 'The store: compression mode, I/O path and on-disk format version.')
  out.sample('cubby_store_info', renderLabels({ compression: stats.device.mode === 'lz4' ? 'lz4' : 'none', io_path: stats.device.ioPath, format_version: '1' }), 1)

  out.family('cubby_operations', 'counter', 'API calls that settled, by operation and result (ok, or error: any rejection, bad arguments included).')
  for (let kind = 0; kind < OPERATION_KINDS.length; kind++) {
    out.sample('cubby_operations_total', `op="${OPERATION_KINDS[kind]}",result="ok"`, operations.outcomes[kind * 2]!)
    out.sample('cubby_operations_total', `op="${OPERATION_KINDS[kind]}",result="error"`, operations.outcomes[kind * 2 + 1]!)
  }
  out.family('cubby_operation_duration_seconds', 'histogram', 'Time from an API call to the settling of its promise.', 'seconds')
  for (let kind = 0; kind < OPERATION_KINDS.length; kind++) out.histogram('cubby_operation_duration_seconds', `op="${OPERATION_KINDS[kind]}"`, operations.latency[kind]!)

  out.gauge('cubby_keys', 'Keys in the buckets (writes still in the write buffer count after their flush).', stats.keys)
  out.gauge('cubby_buckets', 'Buckets in use (4 KiB blocks a key hashes to).', stats.buckets)
  out.gauge('cubby_load_factor', 'Bytes of entries divided by the bytes the buckets can hold.', stats.loadFactor)
  out.gauge('cubby_overflow_buckets', 'Buckets with an overflow chain (a GET of their keys may read twice).', stats.overflowBuckets)
  out.gauge('cubby_overflow_blocks', 'Overflow blocks in use.', stats.overflowBlocks)
  out.gauge('cubby_buffered_writes', 'Records in the write buffers, not yet flushed to their buckets.', stats.bufferedWrites)
  out.counter('cubby_cache_hits', 'GETs answered by the bucket cache.', stats.cache.hits)
  out.counter('cubby_cache_misses', 'GETs that read the device.', stats.cache.misses)

  out.family('cubby_memory_bytes', 'gauge', 'Memory the store holds, by part; every part is bounded by the options, none grows with the number of keys.', 'bytes')
  for (const [part, bytes] of Object.entries(stats.memory)) if (part !== 'total') out.sample('cubby_memory_bytes', `part="${part}"`, bytes)

  out.counter('cubby_device_read_blocks', 'Blocks the store read from its block device.', stats.device.reads)
  out.counter('cubby_device_written_blocks', 'Blocks the store wrote to its block device.', stats.device.writes)
  out.counter('cubby_device_read_bytes', 'Bytes the store read from its block device.', stats.device.bytesRead, 'bytes')
  out.counter('cubby_device_written_bytes', 'Bytes the store wrote to its block device.', stats.device.bytesWritten, 'bytes')
  out.counter('cubby_device_flushes', 'Flushes (fdatasync) the store asked of its block device.', stats.device.flushes)
  out.counter('cubby_device_trims', 'Trims the store asked of its block device.', stats.device.trims)
  out.counter('cubby_volume_reads', 'Read requests the block device issued to the file or /dev node (compression and cleaning included).', device.volume.reads)
  out.counter('cubby_volume_writes', 'Write requests the block device issued to the file or /dev node.', device.volume.writes)
  out.counter('cubby_volume_read_bytes', 'Bytes read from the file or /dev node.', device.volume.bytesRead, 'bytes')
  out.counter('cubby_volume_written_bytes', 'Bytes written to the file or /dev node.', device.volume.bytesWritten, 'bytes')
  out.counter('cubby_volume_syncs', 'fdatasync calls on the file or /dev node.', device.volume.syncs)
  out.counter('cubby_volume_discards', 'Discards (hole punches) on the file or /dev node.', device.volume.discards)

  out.gauge('cubby_logical_bytes', 'Logical bytes of the blocks holding data.', stats.device.logicalBytes, 'bytes')
  out.gauge('cubby_physical_bytes', 'Bytes of the file or /dev node in use.', stats.device.physicalBytes, 'bytes')
  out.gauge('cubby_compression_ratio', 'Logical bytes of the blocks in use divided by their compressed bytes (1 without compression or for an empty store).', stats.device.compressionRatio)
  if (isCompressed(device)) {
    out.gauge('cubby_compressed_live_bytes', 'Compressed bytes of the blocks in use (lz4 stores).', device.liveBytes, 'bytes')
    out.counter('cubby_cleaning_moved_bytes', 'Bytes the cleaner copied to reclaim space since the store was created (lz4 stores).', device.cleaningBytesMoved, 'bytes')
    out.gauge('cubby_cleaning_write_amplification', 'Bytes written to the log, writers and cleaner, divided by the writers\' bytes (lz4 stores; 1 = no cleaning).', device.cleaningWriteAmplification)
    out.gauge('cubby_compressed_free_segments', 'Segments of the compressed log free for new writes (lz4 stores).', device.segments.free)
  }

  out.counter('cubby_log_commits', 'Log frames written (group commits) since open.', stats.log.commits)
  out.counter('cubby_log_committed_writes', 'put, del and batch calls those frames carried.', stats.log.writes)
  out.counter('cubby_log_records', 'Records (one per key written or deleted) those frames carried.', stats.log.records)
  out.counter('cubby_log_written_bytes', 'Record bytes written to the log since open.', stats.log.bytes, 'bytes')
  out.counter('cubby_log_synced_commits', 'Log frames followed by a device flush (a sync write was among them).', stats.log.syncedCommits)
  out.family('cubby_log_group_commit_size', 'histogram', 'Writes per log frame: how many calls shared one group commit.')
  out.histogram('cubby_log_group_commit_size', '', source.groupCommitSizes)

  out.counter('cubby_flush_steps', 'Journaled flush steps committed since open (buffered writes applied, or buckets split).', stats.flushSteps)
  out.counter('cubby_bucket_splits', 'Buckets split since open (linear hashing growth).', stats.splits)
  out.gauge('cubby_generation', 'Flush steps committed since the store was created.', stats.generation)
  out.counter('cubby_write_stalls', 'Times writers waited for room in the write buffer or the log while a flush ran.', stats.writeStalls.count)
  out.counter('cubby_write_stall_seconds', 'Time writers spent waiting for room.', stats.writeStalls.totalMs / 1000, 'seconds')
  out.gauge('cubby_write_stall_max_seconds', 'Longest single wait for room since open.', stats.writeStalls.maxMs / 1000, 'seconds')
  out.gauge('cubby_recovered_log_frames', 'Log frames the open of this handle replayed (non-zero after a crash).', stats.recovery.framesReplayed)
  return out.text()
}
