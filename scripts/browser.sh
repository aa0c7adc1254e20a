#!/usr/bin/env bash
# Install Debian's Chromium for the Playwright browser tests (never `playwright install`).
exec bash "$(dirname "$0")/apt.sh" chromium=chromium
