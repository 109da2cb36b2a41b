'use strict'
// express-session + connect-redis: the same two pages as bench/apps/ours.py, configured the
// way the issue names (resave false, saveUninitialized false, browser-session cookie).
// Environment: PORT (required), BENCH_REDIS_URL (required), BENCH_PREFIX, BENCH_SECRET.

const express = require('express')
const session = require('express-session')
const { RedisStore } = require('connect-redis')
const { createClient } = require('redis')

async function main () {
  const port = Number.parseInt(process.env.PORT || '', 10)
  if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be a positive integer')
  if (!process.env.BENCH_REDIS_URL) throw new Error('BENCH_REDIS_URL is required')

  const client = createClient({ url: process.env.BENCH_REDIS_URL })
  client.on('error', (err) => console.error('redis error:', err.message))
  await client.connect()

  const app = express()
  app.use(session({
    secret: process.env.BENCH_SECRET || 'bench-secret-not-for-production',
    store: new RedisStore({ client, prefix: process.env.BENCH_PREFIX || 'sess:' }),
    resave: false,
    saveUninitialized: false
  }))
  app.get('/count', (req, res) => {
    req.session.views = (req.session.views || 0) + 1
    res.type('text/plain').send(`views=${req.session.views}`)
  })
  app.get('/read', (req, res) => {
    res.type('text/plain').send(`views=${req.session.views || 0}`)
  })

  const server = app.listen(port, '127.0.0.1', () => console.log('listening'))
  const stop = () => {
    server.close(() => { client.close().finally(() => process.exit(0)) })
    server.closeAllConnections()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error('startup failed:', err.message)
  process.exit(1)
})
