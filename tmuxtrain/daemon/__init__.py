"""The scheduler: small parts with one job each (launcher, reaper, log tailer, checkpoint
watcher, hook runner, window keeper), composed by `loop.Scheduler.tick(now)` in a fixed
order. Run it with `python -m tmuxtrain.daemon`; `tmuxtrain up` starts it detached."""
