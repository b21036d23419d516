// The benchmark's readers of flags, /proc files, mountinfo and fio's JSON.
import test from 'ava'
import { parseKeyValueLines } from '../bench/lib/cgroup'
import { FULL_RUN_DEFAULTS, parseArguments, parseBytes, parseCount, UsageError } from '../bench/lib/config'
import { parseFioJson } from '../bench/lib/fio'
import { mountFor } from '../bench/lib/machine'
import { parseIoCounters, parseStatusKilobytes } from '../bench/lib/procstats'

test('counts and sizes take their suffixes', (t) => {
  t.is(parseCount('100k', '--x'), 100_000)
  t.is(parseCount('10M', '--x'), 10_000_000)
  t.is(parseCount('1e6', '--x'), 1_000_000)
  t.is(parseCount('2.5M', '--x'), 2_500_000)
  t.throws(() => parseCount('ten', '--x'), { instanceOf: UsageError })
  t.throws(() => parseCount('1.5', '--x'), { instanceOf: UsageError })
  t.is(parseBytes('64MiB', '--x'), 64 * 1024 * 1024)
  t.is(parseBytes('1G', '--x'), 1024 ** 3)
  t.is(parseBytes('4096', '--x'), 4096)
  t.throws(() => parseBytes('64 parsecs', '--x'), { instanceOf: UsageError })
})

test('flags override the defaults, and bad ones are refused by name', (t) => {
  const config = parseArguments(['--records', '100k,200k', '--engines=rocksdb,lmdb', '--workloads', 'c,d', '--sync', '--memory-limit', '256MiB'], FULL_RUN_DEFAULTS)
  t.deepEqual(config?.recordStages, [100_000, 200_000])
  t.deepEqual(config?.engines, ['rocksdb', 'lmdb'])
  t.deepEqual(config?.workloads, ['C', 'D'])
  t.is(config?.sync, true)
  t.is(config?.memoryLimitBytes, 256 * 1024 * 1024)
  t.is(FULL_RUN_DEFAULTS.sync, false)
  t.is(parseArguments(['--help'], FULL_RUN_DEFAULTS), null)
  t.throws(() => parseArguments(['--records', '200k,100k'], FULL_RUN_DEFAULTS), { message: /ascending/ })
  t.throws(() => parseArguments(['--workloads', 'E'], FULL_RUN_DEFAULTS), { message: /does not apply to a hash store/ })
  t.throws(() => parseArguments(['--engines', 'redis'], FULL_RUN_DEFAULTS), { message: /unknown engine/ })
  t.throws(() => parseArguments(['--bogus', '1'], FULL_RUN_DEFAULTS), { message: /unknown flag --bogus/ })
})

test('a device run needs the confirmation flag naming that exact device', (t) => {
  t.throws(() => parseArguments(['--device', '/dev/nvme1n1'], FULL_RUN_DEFAULTS), { message: /--i-know-this-destroys=\/dev\/nvme1n1/ })
  t.throws(() => parseArguments(['--device', '/dev/nvme1n1', '--i-know-this-destroys=/dev/nvme0n1'], FULL_RUN_DEFAULTS), { instanceOf: UsageError })
  t.throws(() => parseArguments(['--i-know-this-destroys=/dev/sda'], FULL_RUN_DEFAULTS), { instanceOf: UsageError })
  t.is(parseArguments(['--device', '/dev/nvme1n1', '--i-know-this-destroys=/dev/nvme1n1'], FULL_RUN_DEFAULTS)?.device, '/dev/nvme1n1')
})

test('/proc status and io fields are read in bytes and counts', (t) => {
  const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   81920 kB\n'
  t.is(parseStatusKilobytes(status, 'VmRSS'), 100 * 1024 * 1024)
  t.is(parseStatusKilobytes(status, 'VmHWM'), 200 * 1024 * 1024)
  t.throws(() => parseStatusKilobytes(status, 'RssFile'))
  const io = parseIoCounters('rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\nread_bytes: 8192\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n')
  t.deepEqual(io, { readBytes: 8192, writeBytes: 4096, readCalls: 3, writeCalls: 4 })
  t.deepEqual(parseKeyValueLines('oom_kill_disable 0\nunder_oom 0\noom_kill 2\n'), { oom_kill_disable: 0, under_oom: 0, oom_kill: 2 })
})

test('the mount of a path is the longest mount point above it', (t) => {
  const mountInfo = [
    '25 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '30 25 0:23 / /tmp rw - tmpfs tmpfs rw',
    '31 25 254:16 / /tmpdata rw - xfs /dev/vdb rw',
  ].join('\n')
  t.is(mountFor('/tmp/x/y', mountInfo)?.fileSystem, 'tmpfs')
  t.is(mountFor('/tmpdata/z', mountInfo)?.fileSystem, 'xfs')
  t.is(mountFor('/var/tmp', mountInfo)?.source, '/dev/vda')
  t.is(mountFor('/tmp', mountInfo)?.mountPoint, '/tmp')
})

test('fio JSON gives IOPS and latency percentiles in microseconds', (t) => {
  const side = (iops: number) => ({ iops, bw_bytes: iops * 4096, runtime: 10_000, lat_ns: { mean: 400_000 }, clat_ns: { mean: 390_000, percentile: { '50.000000': 380_928, '99.000000': 1_613_824, '99.900000': 5_210_112 } } })
  const text = `fio: some warning\n${JSON.stringify({ jobs: [{ error: 0, read: side(73_685.2), write: side(0) }] })}`
  const job = parseFioJson(text, 'randread', 32, 'io_uring')
  t.is(job.iops, 73_685.2)
  t.is(job.p50Micros, 380.928)
  t.is(job.p999Micros, 5210.112)
  t.is(job.meanMicros, 400)
  t.is(job.seconds, 10)
  t.throws(() => parseFioJson(JSON.stringify({ jobs: [{ error: 5, read: side(1), write: side(1) }] }), 'randread', 1, 'libaio'), { message: /error 5/ })
})
