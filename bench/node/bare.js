'use strict'
// Bare express: the same two pages as bench/apps/bare.py, with no session.
// Environment: PORT (required).

const express = require('express')

const port = Number.parseInt(process.env.PORT || '', 10)
if (!Number.isInteger(port) || port <= 0) throw new Error('PORT must be a positive integer')

const app = express()
app.get('/count', (req, res) => { res.type('text/plain').send('views=1') })
app.get('/read', (req, res) => { res.type('text/plain').send('views=1') })

const server = app.listen(port, '127.0.0.1', () => console.log('listening'))
const stop = () => {
  server.close(() => process.exit(0))
  server.closeAllConnections()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
