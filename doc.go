// Package dollr holds the payment domain: merchants, checkout sources, sessions,
// payment accounts, collections (payment intents), their two status models, the
// error type every layer shares, and the contracts (Store, ChangeFeed) that the
// storage backends implement. It imports nothing but the standard library so
// every other package can depend on it.
package dollr
