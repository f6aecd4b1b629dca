def test_pipeline(proj, shared_worker):
    run = proj.data_pipeline.start({"name": "ada"})
    try:
        assert run.result(timeout=30) == "stored:VALID:ADA"
    except Exception:
        print(shared_worker.tail())
        raise
    types = [e["type"] for e in run.events()]
    assert types[0] == "run_started" and types[-1] == "run_completed"
