// The txscales demo service. query(x) answers x + x: the contract of Finagle's
// own ThriftMux end-to-end test service, so Finagle captures replay against it.
namespace py txscales.demo.gen

exception InvalidQueryException {
  1: i32 errorCode
}

service TestService {
  // Answer x + x.
  string query(1: string x) throws (1: InvalidQueryException ex)

  // Answer x + x after delayMs milliseconds.
  string delayedQuery(1: string x, 2: i32 delayMs) throws (1: InvalidQueryException ex)

  // Raise InvalidQueryException(errorCode).
  string raiseError(1: i32 errorCode) throws (1: InvalidQueryException ex)

  // Fire and forget: the server records the message.
  oneway void log(1: string message)
}
