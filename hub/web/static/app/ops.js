// The GraphQL documents the dashboard sends (graphql/operations/ holds the shared ones; these
// ask for the fields the pages show).

export const EXECUTIONS = `query Executions($limit: Int!) {
  executions(limit: $limit) { executionId executionNumber strategy symbols timeframe status progress taskType mode initialCapital finalValue createdAt }
}`;

export const STRATEGIES = `query Strategies {
  strategies { name description params { name type default bounds description } }
  datasets(limit: 100) { symbol granularity }
}`;

export const START_BACKTEST = `mutation StartBacktest($input: StartBacktestInput!) {
  startBacktest(input: $input) { executionId status total }
}`;

export const STOP_EXECUTION = `mutation StopExecution($id: ID!) {
  stopExecution(id: $id) { executionId status }
}`;

// Kept in the page (dashboard.html), which sends it early for an execution page.
export const EXECUTION = document.getElementById("execution-query").textContent;

export const EQUITY_SUB = `subscription Equity($executionId: ID!, $sinceSequence: Int) {
  equity(executionId: $executionId, sinceSequence: $sinceSequence) { sequence timestamp balance }
}`;

export const TRADES_SUB = `subscription ExecutionTrades($executionId: ID!, $sinceSequence: Int) {
  executionTrades(executionId: $executionId, sinceSequence: $sinceSequence) { sequence instrument direction status entryTime entryPrice exitTime exitPrice units pnl fees exitReason }
}`;

export const EVENTS_SUB = `subscription ExecutionEvents($executionId: ID!, $sinceSequence: Int) {
  executionEvents(executionId: $executionId, sinceSequence: $sinceSequence) { sequence eventType timestamp event }
}`;

export const STATUS_SUB = `subscription ExecutionStatus($executionId: ID!) {
  executionStatus(executionId: $executionId) { sequence status progress errorMessage checkpoint { processed } }
}`;

const ORDER = "id accountId clientOrderId symbol side type quantity price stopPrice timeInForce status rejectReason filledQuantity averagePrice createdAt updatedAt";
const POSITION = "id symbol quantity averagePrice realizedPnl lastPrice unrealizedPnl marketValue";
const BALANCES = "sequence accountId currency initialBalance cash balance netLiquidatingValue openPnl realizedPnl feesPaid";

export const ACCOUNTS = `query Accounts { accounts { id name broker currency active initialBalance createdAt } }`;

export const CREATE_ACCOUNT = `mutation CreatePaperAccount($input: CreatePaperAccountInput!) {
  createPaperAccount(input: $input) { id name }
}`;

export const ACCOUNT = `query Account($id: ID!) {
  account(id: $id) { id name broker currency active initialBalance feeRate slippageBps }
  orders(accountId: $id, status: [PENDING, WORKING, PARTIALLY_FILLED], limit: 500) { ${ORDER} }
  positions(accountId: $id) { sequence positions { ${POSITION} } }
  balances(accountId: $id) { ${BALANCES} }
}`;

export const ORDERS_SUB = `subscription OrderUpdates($accountId: ID!, $sinceSequence: Int) {
  orders(accountId: $accountId, sinceSequence: $sinceSequence) { sequence event order { ${ORDER} } fill { id quantity price fee realizedPnl ts } }
}`;

export const POSITIONS_SUB = `subscription PositionUpdates($accountId: ID!) {
  positions(accountId: $accountId) { sequence positions { ${POSITION} } }
}`;

export const BALANCES_SUB = `subscription BalanceUpdates($accountId: ID!) {
  balances(accountId: $accountId) { ${BALANCES} }
}`;

export const PLACE_ORDER = `mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER} } }`;
export const CANCEL_ORDER = `mutation CancelOrder($id: ID!) { cancelOrder(id: $id) { ${ORDER} } }`;

const JOB = "jobId jobType status progress total error cancelRequested createdAt";
export const JOBS = `query Jobs($limit: Int!) { jobs(limit: $limit) { count items { ${JOB} } } }`;
export const JOB_PROGRESS_SUB = `subscription JobProgress($jobId: ID!) { jobProgress(jobId: $jobId) { sequence job { ${JOB} } } }`;
export const CANCEL_JOB = `mutation CancelJob($id: ID!) { cancelJob(id: $id) { ${JOB} } }`;

export const TICKS_SUB = `subscription Ticks($symbol: String!, $sinceSequence: Int, $epoch: String) {
  ticks(symbol: $symbol, sinceSequence: $sinceSequence, epoch: $epoch) { sequence epoch symbol ts price size }
}`;
