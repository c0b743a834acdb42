"""Start the web app (same as `t2l-app`): python run_app.py [--host H] [--port P] [key=value ...]"""
from text2live_geo.apps.cli.app import main

if __name__ == "__main__":
    raise SystemExit(main())
