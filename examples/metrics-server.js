'use strict'
// A small key-value HTTP service over one CubbyDB store, with Prometheus
// metrics on /metrics: prom-client's process metrics (CPU, memory, event loop,
// GC) followed by the store's own (db.metrics(), docs/api.md "metrics()").
//
//   node examples/metrics-server.js [store.img] [port]
//   curl -X PUT --data-binary 'Ada' http://127.0.0.1:9464/kv/user:1
//   curl http://127.0.0.1:9464/kv/user:1
//   curl http://127.0.0.1:9464/metrics
//
// Both parts are Prometheus text 0.0.4, so they concatenate. For OpenMetrics
// instead, set the registry's content type to OPENMETRICS_CONTENT_TYPE, drop
// the "# EOF" line that ends its output, and append db.metrics().
const http = require('node:http')
const client = require('prom-client')
const { open } = require('cubbydb')

const MAX_BODY_BYTES = 1024 * 1024

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let bytes = 0
    request.on('data', (chunk) => {
      bytes += chunk.length
      if (bytes > MAX_BODY_BYTES) request.destroy(new Error('body too large'))
      else chunks.push(chunk)
    })
    request.once('end', () => resolve(Buffer.concat(chunks)))
    request.once('error', reject)
  })
}

async function main() {
  const path = process.argv[2] ?? 'example.img'
  const port = Number(process.argv[3] ?? 9464)
  const db = await open(path, { expectedKeys: 100_000 })
  const registry = new client.Registry()
  client.collectDefaultMetrics({ register: registry })

  const server = http.createServer(async (request, response) => {
    try {
      const url = new URL(request.url, 'http://localhost')
      if (url.pathname === '/metrics' && request.method === 'GET') {
        response.setHeader('Content-Type', registry.contentType)
        response.end((await registry.metrics()) + db.metrics({ format: 'prometheus' }))
        return
      }
      const key = url.pathname.startsWith('/kv/') ? decodeURIComponent(url.pathname.slice(4)) : ''
      if (key === '') {
        response.writeHead(404).end()
      } else if (request.method === 'PUT') {
        await db.put(key, await readBody(request))
        response.writeHead(204).end()
      } else if (request.method === 'GET') {
        const value = await db.get(key)
        if (value === undefined) response.writeHead(404).end()
        else response.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(value)
      } else if (request.method === 'DELETE') {
        await db.del(key)
        response.writeHead(204).end()
      } else {
        response.writeHead(405).end()
      }
    } catch (error) {
      response.writeHead(error.code?.startsWith('CUBBY_INVALID') ? 400 : 500).end(`${error.code ?? 'ERROR'}: ${error.message}\n`)
    }
  })

  const stop = () => server.close(() => db.close().then(() => process.exit(0)))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}/metrics`))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
