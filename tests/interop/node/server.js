'use strict'
// Reference express-session app on connect-redis (or connect-pg-simple): the interop tests
// drive it and our Quart extension with one cookie and one store, so both must read each
// other's sessions.
//
// Configuration (environment):
//   PORT               port on 127.0.0.1 (required)
//   STORE              redis (default) or postgres
//   REDIS_URL          node-redis URL (required with STORE=redis)
//   PREFIX             connect-redis key prefix (default sess:)
//   DATABASE_URL       node-postgres connection string (required with STORE=postgres)
//   SCHEMA             connect-pg-simple's schema (default: the search path)
//   TABLE              connect-pg-simple's table name (default session; created when missing)
//   SECRET             comma-separated secrets; the first signs, all verify (required)
//   COOKIE_MAX_AGE_MS  cookie maxAge in ms (optional; unset means a browser-session cookie)
//   NAME               cookie name (default connect.sid)
//
// Routes:
//   GET  /count              views += 1 (first visit: 1) -> {"id", "views"}
//   GET  /read               -> {"id", "data"} without modifying the session
//   POST /set?key=K&value=V  value parsed as JSON -> {"id", "data"}
//   POST /destroy            destroys the session -> {"destroyed": id}

const express = require('express')
const session = require('express-session')
const { RedisStore } = require('connect-redis')
const { createClient } = require('redis')
const connectPgSimple = require('connect-pg-simple')
const { Pool } = require('pg')

function config () {
  const port = Number.parseInt(process.env.PORT || '', 10)
  if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be a positive integer')
  const secrets = (process.env.SECRET || '').split(',').filter((s) => s.length > 0)
  if (secrets.length === 0) throw new Error('SECRET must hold at least one secret')
  const cookie = { path: '/', httpOnly: true }
  if (process.env.COOKIE_MAX_AGE_MS) {
    const maxAge = Number(process.env.COOKIE_MAX_AGE_MS)
    if (!Number.isFinite(maxAge) || maxAge <= 0) throw new Error('COOKIE_MAX_AGE_MS must be a positive number')
    cookie.maxAge = maxAge
  }
  return {
    port,
    secrets,
    cookie,
    store: process.env.STORE || 'redis',
    redisUrl: process.env.REDIS_URL,
    databaseUrl: process.env.DATABASE_URL,
    schema: process.env.SCHEMA || undefined,
    table: process.env.TABLE || 'session',
    // An empty PREFIX is a valid connect-redis prefix, so only an unset one takes the default.
    prefix: process.env.PREFIX === undefined ? 'sess:' : process.env.PREFIX,
    name: process.env.NAME || 'connect.sid'
  }
}

function sessionData (sess) {
  const data = {}
  for (const key of Object.keys(sess)) {
    if (key !== 'cookie') data[key] = sess[key]
  }
  return data
}

// The session store the configuration names, and how to close its connections.
async function openStore (cfg) {
  if (cfg.store === 'postgres') {
    if (!cfg.databaseUrl) throw new Error('DATABASE_URL is required with STORE=postgres')
    const pool = new Pool({ connectionString: cfg.databaseUrl })
    pool.on('error', (err) => console.error('postgres error:', err.message))
    const PgStore = connectPgSimple(session)
    const store = new PgStore({
      pool, schemaName: cfg.schema, tableName: cfg.table, createTableIfMissing: true
    })
    return { store, close: async () => { store.close(); await pool.end() } }
  }
  if (cfg.store !== 'redis') throw new Error('STORE must be redis or postgres')
  // No default: the tests hand over their own Redis, and nothing may fall back to a shared one.
  if (!cfg.redisUrl) throw new Error('REDIS_URL is required')
  const client = createClient({ url: cfg.redisUrl })
  client.on('error', (err) => console.error('redis error:', err.message))
  await client.connect()
  return { store: new RedisStore({ client, prefix: cfg.prefix }), close: () => client.close() }
}

async function main () {
  const cfg = config()
  const { store, close } = await openStore(cfg)

  const app = express()
  app.use(session({
    name: cfg.name,
    secret: cfg.secrets,
    store,
    cookie: cfg.cookie,
    resave: false,
    saveUninitialized: false
  }))

  app.get('/count', (req, res) => {
    req.session.views = (req.session.views || 0) + 1
    res.json({ id: req.sessionID, views: req.session.views })
  })

  app.get('/read', (req, res) => {
    res.json({ id: req.sessionID, data: sessionData(req.session) })
  })

  app.post('/set', (req, res) => {
    const key = req.query.key
    const raw = req.query.value
    if (typeof key !== 'string' || key === '' || key === 'cookie' || typeof raw !== 'string') {
      return res.status(400).json({ error: 'key (not "cookie") and value are required' })
    }
    let value
    try {
      value = JSON.parse(raw)
    } catch (err) {
      return res.status(400).json({ error: 'value must be JSON' })
    }
    req.session[key] = value
    res.json({ id: req.sessionID, data: sessionData(req.session) })
  })

  app.post('/destroy', (req, res, next) => {
    const id = req.sessionID
    req.session.destroy((err) => {
      if (err) return next(err)
      res.json({ destroyed: id })
    })
  })

  // A JSON error without a stack trace: the tests read bodies, people should not read traces.
  app.use((err, req, res, next) => {
    console.error('request error:', err && err.message)
    if (res.headersSent) return next(err)
    res.status(500).json({ error: 'internal error' })
  })

  const server = app.listen(cfg.port, '127.0.0.1', () => console.log('listening'))

  const stop = () => {
    server.close(() => {
      Promise.resolve(close()).finally(() => process.exit(0))
    })
    // Keep-alive sockets would hold close() open; the test is done with them.
    server.closeAllConnections()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error('startup failed:', err.message)
  process.exit(1)
})
