// `cubby bench`, run as the real binary: its own help, and a tiny quick run
// of the real benchmark (CubbyDB alone, 2,000 keys) whose results.json comes
// back on stdout with --json. Serial: the first run may compile the
// benchmark, and two compilers must not write dist-bench/ at once.
import test from 'ava'
import { cubby, cubbyJson } from './helpers/cli'

test.serial('bench --help explains the passthrough; -- --help reaches the benchmark', async (t) => {
  const own = await cubby(['bench', '--help'])
  t.is(own.status, 0)
  t.true(own.text.startsWith('usage: cubby bench [--full] [benchmark flags…]'))
  const passed = await cubby(['bench', '--', '--help'])
  t.is(passed.status, 0, passed.stderr)
  t.regex(passed.text, /--records N\[,N…\]/, "the benchmark's own flags")
})

test.serial('bench --json runs the quick benchmark with the flags given and prints its results.json', async (t) => {
  const flags = ['--engines', 'cubbydb-lz4', '--records', '2k', '--operations', '1k', '--warmup-operations', '100', '--probe-operations', '100']
  const limits = ['--phase-seconds', '10', '--load-seconds', '60', '--no-fio', '--no-cgroup', '--no-drop-caches']
  const { status, json, stderr } = await cubbyJson<Record<string, any>>(['bench', ...flags, ...limits])
  t.is(status, 0, stderr)
  t.is(json.label, 'quick run')
  t.deepEqual(json.config.engines, ['cubbydb-lz4'])
  t.deepEqual(json.config.recordStages, [2000])
  t.deepEqual(json.config.workloads, ['C'])
  t.is(json.runs.length, 1)
  t.is(json.runs[0].status, 'completed')
  t.regex(stderr, /CubbyDB lz4/, "the benchmark's own report went to stderr")
})

test.serial('a benchmark flag it does not know is the benchmark\'s usage error', async (t) => {
  const result = await cubby(['bench', '--records', 'many'])
  t.is(result.status, 2)
  t.regex(result.stderr, /records/)
})
