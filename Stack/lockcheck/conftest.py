def pytest_addoption(parser):
    parser.addoption("--lock", required=True, help="path of the hash-locked requirements file")
