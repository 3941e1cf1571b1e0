# natlab: real NAT, real hole punching, on one machine. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat requirements.txt | md5sum | cut -c1-8)

# Lab settings (the CLI validates them before anything starts); .env may set them too.
-include .env
ENGINE   ?= docker
PAIRS    ?= 1
TOPOLOGY ?= standard
NAT_A    ?= port-restricted
NAT_B    ?= port-restricted
NAT_CARRIER ?= full-cone,ports=block,hairpin=on
LINK_A   ?= lan
LINK_B   ?= lan
LINK_BROKER ?= lan
RELAY    ?= auto
CANDIDATES ?= all
MESSAGES ?= 10
RUNS     ?= 20
SOAK_MINUTES ?= 30
BENCH_MAX_PAIRS ?=
RUN      ?=
NODE     ?= peer-a
NAT      ?=
LINK     ?=
LIFETIME ?=
ROOM     ?= chat
A        ?=
B        ?=
EXPECT   ?= any
DURATION ?= 30
WAN      ?=
MOUNT    ?=
NODE_IMAGE ?=
export ENGINE PAIRS TOPOLOGY NAT_A NAT_B NAT_CARRIER LINK_A LINK_B LINK_BROKER RELAY CANDIDATES FAULT MESSAGES A B WAN EXPECT DURATION NATS LINKS SHAPES
# MOUNT: a directory of your files for `make run`, in every peer and the WAN host (under Docker at lab-up)
export NATLAB_MOUNT := $(if $(MOUNT),$(abspath $(MOUNT)))
# NODE_IMAGE: your image (FROM natlab-node), or a directory whose Dockerfile builds it, for the
# peers and the WAN host under Docker (at lab-up)
export NATLAB_NODE_IMAGE := $(NODE_IMAGE)
# Compose v2 plugin where present, else Compose v1.29 (Debian's docker-compose); asked only for Docker.
ifeq ($(ENGINE),docker)
COMPOSE  ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
export NATLAB_COMPOSE := $(COMPOSE)
endif

.PHONY: help venv lab-up lab-down status punch-test verdict report pcap-summary compose test unit-test \
	system-test netns-test docker-test bench soak bench-links clean link-set tshark host-tools chat-a chat-b bench-broker nat-set classify classify-all run matrix

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "  variables: ENGINE=$(ENGINE) PAIRS=$(PAIRS) TOPOLOGY=$(TOPOLOGY) NAT_A=$(NAT_A) NAT_B=$(NAT_B) NAT_CARRIER=$(NAT_CARRIER) LINK_A=$(LINK_A) LINK_B=$(LINK_B) LINK_BROKER=$(LINK_BROKER) RELAY=$(RELAY) CANDIDATES=$(CANDIDATES) MESSAGES=$(MESSAGES) RUNS=$(RUNS)$(if $(COMPOSE), COMPOSE='$(COMPOSE)')"

$(STAMP): requirements.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { echo "installing python3-venv"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@# byte-code for the project too: where PYTHONDONTWRITEBYTECODE is set, every command would compile it
	@$(PY) -m compileall -q lab nat node peers relay server wire >/dev/null
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP) ## create the host virtualenv with the project's Python deps

lab-up: $(STAMP) ## stand the lab up (ENGINE=docker: installs Docker, builds the image; ENGINE=netns: namespaces)
	$(PY) -m lab up

lab-down: $(STAMP) ## remove every container / namespace, network and process of the lab
	$(PY) -m lab down

status: $(STAMP) ## show the topology and whether the lab is up
	$(PY) -m lab status

punch-test: $(STAMP) ## rendezvous + punch + exchange under capture; verdict from the pcaps, then the report [FAULT=broker-restart|peer-killed|rebinding CANDIDATES=all|public]
	$(PY) -m lab punch-test --messages $(MESSAGES)

run: $(STAMP) ## your own programs as the peers: A='cmd' B='cmd' [WAN='cmd'] [EXPECT=direct|local|relayed|any] [DURATION=30]
	$(PY) -m lab run

matrix: $(STAMP) ## every NAT pair punched at once in a lab of its own: theory vs pcaps per cell [NATS=a,b,.. LINKS=.. SHAPES=standard,cgnat,cgnat-a,cgnat-apart,public-peer,same-lan RELAY= RUNS=1] [A='cmd' B='cmd' WAN= DURATION=: your programs']
	$(PY) -m lab matrix $(if $(filter command line environment,$(origin RUNS)),--runs $(RUNS))

verdict: $(STAMP) ## re-check a run from its pcaps (RUN=<id>, default captures/latest)
	$(PY) -m lab verdict -v $(RUN)

report: $(STAMP) ## write report.md, ladder.png, merged.pcapng of a run (RUN=<id>, default latest)
	$(PY) -m lab report $(RUN)

pcap-summary: $(STAMP) ## print a run's flows and NAT tables (RUN=<id>, default captures/latest)
	$(PY) -m lab show $(RUN)

nat-set: $(STAMP) ## change a router's NAT on the running lab: NODE=router-a NAT=symmetric
	@test -n "$(NAT)" || { echo "usage: make nat-set NODE=router-a NAT=<preset or axes>"; exit 2; }
	$(PY) -m lab nat-set $(NODE) "$(NAT)"

link-set: $(STAMP) ## change a router's (or the broker's) link on the running lab: NODE=router-a LINK=delay=50ms,loss=5%
	@test -n "$(LINK)" || { echo "usage: make link-set NODE=router-a LINK=<preset or axes>"; exit 2; }
	$(PY) -m lab link-set $(NODE) "$(LINK)"

classify: $(STAMP) ## RFC 5780 classification from NODE (peer-a) incl. mapping lifetime, checked by natdiscovery and stun-client
	$(PY) -m lab classify $(NODE) $(if $(LIFETIME),--lifetime-max $(LIFETIME))

classify-all: $(STAMP) ## every NAT preset on router-a, classified three ways, as one table
	$(PY) -m lab classify-all router-a $(if $(LIFETIME),--lifetime-max $(LIFETIME))

compose: $(STAMP) ## regenerate compose.yaml from lab/topology.py
	$(PY) -m lab compose

# The tests read every pcap back with tshark, as users do; install it where it is missing (root).
tshark:
	@command -v tshark >/dev/null || { echo "installing tshark (the tests open every pcap with it)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null || \
	  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q tshark >/dev/null; }; }

# On netns a node runs the host's programs, so the tests' outside tools must be on the host, as the
# node image (or the recipe's image) has them for Docker: the NAT-behaviour tests' classifiers
# (coturn's turnutils_natdiscovery, stun-client's stun), the n2n recipe's edge and supernode, and
# Chromium, in which the tests look at matrix.html.
# Installed without starting their services (a turnserver would hold port 3478 on the host).
host-tools: $(STAMP) ## install on the host what the netns tests run there (coturn, stun-client, n2n, chromium), services not started
	@$(PY) -m lab host-tools turnutils_natdiscovery=coturn stun=stun-client edge=n2n supernode=n2n chromium=chromium

unit-test: $(STAMP) tshark ## fast tests (tests/unit): codecs, rules, broker logic, pcap analysis on built pcaps
	$(PY) -m pytest tests/unit -q

netns-test: $(STAMP) tshark host-tools ## the real lab on network namespaces (tests/system, marker netns; root, no Docker)
	$(PY) -m pytest tests/system -m netns -q

docker-test: $(STAMP) tshark ## the real lab under Docker (tests/system, marker docker; root; installs Docker if needed)
	$(PY) -m pytest tests/system -m docker -q

system-test: netns-test docker-test ## the system tests on both engines, netns first

test: unit-test netns-test docker-test ## everything, in this order: unit, netns system, Docker system tests

bench: $(STAMP) ## lab-up/down netns vs Docker, largest PAIRS punched, time to punch; then bench-links, the relay's, make run's and the matrix's figures (ENGINE=netns: netns only)
	$(PY) -m bench --runs $(RUNS) $(if $(BENCH_MAX_PAIRS),--max-pairs $(BENCH_MAX_PAIRS)) \
	  $(if $(filter command line environment,$(origin ENGINE)),--engine $(ENGINE))

soak: $(STAMP) tshark host-tools ## the lab kept busy SOAK_MINUTES (30): punch tests, junk floods, faults; fails on any failed verdict, memory growth, fd or namespace leak (not in make test)
	$(PY) -m bench.soak --engine $(ENGINE) --minutes $(SOAK_MINUTES) --pairs $(PAIRS)

bench-links: $(STAMP) ## punching through slow, lossy links (netns): time to punch per RTT, success per loss, stage ceiling
	$(PY) -m bench.link_bench

bench-broker: $(STAMP) ## broker vs coturn STUN throughput (one core each), junk flood drops, peak memory
	$(PY) -m bench.broker_bench

chat-a: $(STAMP) ## chat from peer-a, typed lines go straight to peer-b (run chat-b in another terminal; ROOM=chat)
	@$(PY) -m lab.experiment.chat_attach a --room $(ROOM)

chat-b: $(STAMP) ## chat from peer-b (see chat-a)
	@$(PY) -m lab.experiment.chat_attach b --room $(ROOM)

clean: ## remove captures and the virtualenv (run lab-down first)
	rm -rf captures $(VENV) .pytest_cache
