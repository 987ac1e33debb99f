# Shortcuts for ./dev (which needs only bash, so it works before make is installed).
.PHONY: demo test build asan
demo:
	./dev demo
test:
	./dev test
build:
	./dev build
asan:
	SANITIZE=1 BUILD_DIR=build-asan ./dev test
