// Live views over GraphQL subscriptions (graphql-transport-ws, the vendored graphql-ws client).
//
// One socket for the page. Each stream remembers the last sequence it delivered; when the socket
// drops, the page shows "reconnecting", opens a new socket with a backoff and resubscribes every
// stream from its last sequence (and epoch). Anything at or below that sequence is dropped, so a
// view never shows a duplicate; a stream that must be contiguous counts any jump as a gap.

import { createClient } from "/static/vendor/graphql-ws-6.4.2/client.js";
import { expire, session } from "./api.js";

const SESSION_CLOSES = new Set([4401, 4403]);

export class Stream {
  /**
   * @param {object} spec
   * @param {string} spec.query        the subscription document
   * @param {string} spec.field        the root field its events come under
   * @param {object} spec.variables    its variables (sinceSequence/epoch are added on resume)
   * @param {boolean} spec.resumable   passes sinceSequence (and epoch) when it reopens
   * @param {boolean} spec.contiguous  sequences go up by one (a jump is a gap)
   * @param {number|null} spec.since   the last sequence already shown (history loaded by a query)
   * @param {function} spec.onEvent    each new event, in order, once
   * @param {function} spec.onLost     the server no longer holds what follows `since`
   * @param {function} spec.onError    any other error the server sends
   */
  constructor(spec) {
    Object.assign(this, { resumable: true, contiguous: false, since: null, epoch: null }, spec);
    this.gaps = 0;
    this.duplicates = 0;
    this.received = 0;
    this.dispose = null;
    this.closed = false;
  }

  vars() {
    const variables = { ...this.variables };
    if (this.resumable && this.since !== null) {
      variables.sinceSequence = this.since;
      if (this.epoch !== null) variables.epoch = this.epoch;
    }
    return variables;
  }

  deliver(event) {
    const seq = event.sequence;
    if (event.epoch !== undefined && this.epoch !== null && event.epoch !== this.epoch) {
      // A new epoch: the topic's history restarted; sequences start over.
      this.since = null;
    }
    if (this.since !== null && seq <= this.since) {
      this.duplicates += 1;
      return;
    }
    if (this.contiguous && this.since !== null && seq !== this.since + 1) this.gaps += 1;
    this.since = seq;
    if (event.epoch !== undefined) this.epoch = event.epoch;
    this.received += 1;
    this.onEvent(event);
  }
}

export class Live {
  constructor({ onState = () => {} } = {}) {
    this.streams = new Set();
    this.client = null;
    this.state = "idle";
    this.onState = onState;
    this.attempt = 0;
    this.timer = null;
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  start() {
    if (this.client || this.timer) return;
    this.connect();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    this.client = null;
    for (const stream of this.streams) stream.dispose = null;
    if (client) client.dispose();
    this.setState("idle");
  }

  connect() {
    this.timer = null;
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const client = createClient({
      url,
      lazy: false,
      retryAttempts: 0,
      keepAlive: 10_000,
      onNonLazyError: () => {},
      connectionParams: () => ({ Authorization: `Bearer ${session.token}` }),
      on: {
        connected: () => {
          if (this.client !== client) return;
          this.attempt = 0;
          this.setState("live");
          for (const stream of this.streams) this.open(stream);
        },
        closed: (event) => this.dropped(client, event),
      },
    });
    this.client = client;
  }

  dropped(client, event) {
    if (this.client !== client) return;
    this.client = null;
    for (const stream of this.streams) stream.dispose = null;
    client.dispose();
    if (event && SESSION_CLOSES.has(event.code)) {
      this.setState("signed out");
      expire();
      return;
    }
    this.attempt += 1;
    this.setState("reconnecting");
    const delay = Math.min(3000, 100 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Follow `stream` from now on (and after every reconnect), until `unsubscribe`. */
  subscribe(stream) {
    this.streams.add(stream);
    if (this.state === "live" && this.client) this.open(stream);
    else this.start();
    return stream;
  }

  unsubscribe(stream) {
    stream.closed = true;
    this.streams.delete(stream);
    if (stream.dispose) stream.dispose();
    stream.dispose = null;
  }

  /** Subscribe `stream` again from its `since` (after a page reloaded its history). */
  reopen(stream) {
    if (stream.dispose) stream.dispose();
    stream.dispose = null;
    if (this.client && this.state === "live" && !stream.closed) this.open(stream);
  }

  open(stream) {
    const client = this.client;
    const stale = () => this.client !== client || stream.closed;
    stream.dispose = client.subscribe(
      { query: stream.query, variables: stream.vars() },
      {
        next: (result) => {
          if (stale()) return;
          if (result.errors && result.errors.length) return this.failed(stream, result.errors);
          if (result.data && result.data[stream.field]) stream.deliver(result.data[stream.field]);
        },
        error: (error) => {
          if (stale()) return;
          if (Array.isArray(error)) this.failed(stream, error);
          // A close event: `closed` reconnects every stream.
        },
        complete: () => {},
      },
    );
  }

  failed(stream, errors) {
    const error = errors[0];
    const ext = error.extensions || {};
    if (ext.code === "UNAUTHORIZED") {
      this.stop();
      expire();
      return;
    }
    if (ext.code === "STREAM_INTERRUPTED") {
      const reason = (ext.details && ext.details.reason) || "";
      if (reason === "history_lost" || /no longer holds/.test(error.message)) {
        stream.since = null;
        stream.epoch = null;
        if (stream.onLost) stream.onLost(error);
        return;
      }
      // Dropped as a slow consumer: take it up again from the last sequence shown.
      if (stream.dispose) stream.dispose();
      if (this.client && !stream.closed) this.open(stream);
      return;
    }
    if (stream.onError) stream.onError(error);
  }
}

export const live = new Live();
