"""meow.report"""
