// examples/metrics-server.js, run as a user would: a real HTTP service whose
// /metrics (prom-client's process metrics followed by db.metrics()) parses as
// one valid Prometheus exposition and counts the requests made to it.
import test from 'ava'
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../src/db'
import { parseExposition, sampleValue } from './helpers/exposition'

const EXAMPLE = path.resolve(__dirname, '..', '..', 'examples', 'metrics-server.js')

test('the prom-client example serves the store and its metrics on /metrics, and closes the store on SIGTERM', async (t) => {
  const store = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-example-')), 'service.img')
  const server = spawn(process.execPath, [EXAMPLE, store, '0'], { cwd: path.dirname(EXAMPLE), stdio: ['ignore', 'pipe', 'pipe'] })
  let errors = ''
  server.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)))
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let output = ''
      server.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(output)
        if (match !== null) resolve(match[1]!)
      })
      void exited.then(() => reject(new Error(`the example exited before listening: ${errors}`)))
    })
    t.is((await fetch(`${base}/kv/user:1`, { method: 'PUT', body: 'Ada' })).status, 204)
    t.is((await fetch(`${base}/kv/user:2`, { method: 'PUT', body: 'Grace' })).status, 204)
    t.is(await (await fetch(`${base}/kv/user:1`)).text(), 'Ada')
    t.is((await fetch(`${base}/kv/nobody`)).status, 404)
    t.is((await fetch(`${base}/kv/${'k'.repeat(2000)}`, { method: 'PUT', body: 'x' })).status, 400, 'a key over 1024 bytes')

    const response = await fetch(`${base}/metrics`)
    t.is(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
    const families = parseExposition(await response.text(), 'prometheus')
    const names = families.map((family) => family.name)
    t.true(names.includes('process_resident_memory_bytes'), "prom-client's process metrics")
    t.true(names.includes('cubby_operations_total'), "the store's metrics")
    t.is(sampleValue(families, 'cubby_operations_total', { op: 'put', result: 'ok' }), 2)
    t.is(sampleValue(families, 'cubby_operations_total', { op: 'put', result: 'error' }), 1)
    t.is(sampleValue(families, 'cubby_operations_total', { op: 'get', result: 'ok' }), 2)
    t.is(sampleValue(families, 'cubby_log_synced_commits_total'), 2)
  } finally {
    server.kill('SIGTERM')
  }
  t.is(await exited, 0, errors)
  const db = await open(store, { readOnly: true, create: false })
  t.is((await db.get('user:2'))?.toString(), 'Grace', 'the store was closed cleanly with its writes')
  await db.close()
})
