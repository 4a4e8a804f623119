"""meow.evaluate"""
