# Shortcuts for ./dev (which needs only bash, so it works before make is installed).
.PHONY: demo test build sanitize
demo:
	./dev demo
test:
	./dev test
build:
	./dev build
sanitize:
	./dev sanitize
