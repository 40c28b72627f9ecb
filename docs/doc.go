// Package docs holds the exporter's documentation (the Markdown files beside this one) and the
// tests that keep it true: links resolve, nothing refers to a file outside the repository, the
// metrics and flags references match what the exporter exposes and accepts, and the versions
// agree.
package docs
