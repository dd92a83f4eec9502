// Jobs: yours (every one, for an admin), newest first, with live progress and a cancel button.

import { ApiError, gql } from "../api.js";
import { Table, h, progressBar, statusBadge, time } from "../dom.js";
import { Stream, live } from "../live.js";
import { CANCEL_JOB, JOBS, JOB_PROGRESS_SUB } from "../ops.js";

const ACTIVE = new Set(["PENDING", "RUNNING"]);
const FOLLOWED = 25;

export function render(view) {
  const streams = new Map();
  const error = h("p", { class: "error", hidden: true });
  const total = h("span", { class: "count" });
  const table = new Table(
    [
      { label: "Job", cell: (j) => h("code", {}, j.jobId.slice(0, 8)) },
      { label: "Type", cell: (j) => j.jobType },
      { label: "Status", cell: (j) => [statusBadge(j.status), j.cancelRequested && ACTIVE.has(j.status) ? h("small", { class: "muted" }, " cancelling") : ""] },
      { label: "Progress", cell: (j) => progressBar(j.total ? j.progress / j.total : j.status === "COMPLETED" ? 1 : 0) },
      { label: "Error", cell: (j) => j.error || "" },
      { label: "Created", cell: (j) => time(j.createdAt) },
      { label: "", cell: (j) => (ACTIVE.has(j.status) ? h("button", { type: "button", class: "small danger", onclick: () => cancel(j) }, "Cancel") : "") },
    ],
    { empty: "No jobs.", newestFirst: false },
  );

  async function cancel(job) {
    error.hidden = true;
    try {
      Object.assign(job, (await gql(CANCEL_JOB, { id: job.jobId })).cancelJob);
      table.upsert(job.jobId, job);
    } catch (e) {
      if (e instanceof ApiError) {
        error.textContent = e.message;
        error.hidden = false;
      }
    }
  }

  function follow(job) {
    if (!ACTIVE.has(job.status) || streams.has(job.jobId) || streams.size >= FOLLOWED) return;
    const stream = live.subscribe(
      new Stream({
        query: JOB_PROGRESS_SUB,
        field: "jobProgress",
        variables: { jobId: job.jobId },
        resumable: false,
        onEvent: (u) => {
          Object.assign(job, u.job);
          table.upsert(job.jobId, job);
          if (!ACTIVE.has(job.status)) {
            live.unsubscribe(stream);
            streams.delete(job.jobId);
          }
        },
      }),
    );
    streams.set(job.jobId, stream);
  }

  async function load() {
    try {
      const data = await gql(JOBS, { limit: 50 });
      error.hidden = true;
      total.textContent = `${data.jobs.count}`;
      table.clear();
      for (const job of data.jobs.items) {
        table.upsert(job.jobId, job);
        follow(job);
      }
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  }

  view.append(h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h2", {}, "Jobs ", total), h("button", { type: "button", onclick: load }, "Refresh")),
    error, table.el));
  load();
  return () => streams.forEach((s) => live.unsubscribe(s));
}
