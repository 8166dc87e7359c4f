// Package e2e holds Apron's end-to-end tests: a master, agents running real
// processes and frameworks, composed as a user composes them, exercised
// through the public drivers only.
package e2e
